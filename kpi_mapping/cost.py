"""GPU-dollar cost per token: the period's GPU bill, allocated to requests, idle on its own line.

The inventory is a set of price regimes: one row per pod and span of time with a GPU count
and a $/GPU-hour. Per regime: bill = hours × count × price; busy GPU-seconds = the busy
clock-seconds inside the regime (the union of the pod's requests' engine intervals — a batch
of concurrent requests occupies the GPUs once, not once per request) × the count in force.
The busy part of the regime's bill (bill × busy / provisioned) is split among the requests
that ran in it by measured prefill + decode time (OpenCost's compute-time method), prefill
scaled down by the share of prompt tokens served from the prefix cache. The rest is idle.

It is computed from the hourly roll-up (collectors/usage.py: per pod-hour busy time, per
pod, hour, tenant, feature and model the charged work in integer microseconds): allocation
is linear in work within a regime, so per-group sums from the roll-up are those from raw
rows, and a period whose raw rows have aged out is priced the same. The hour is the unit:
a regime that starts inside an hour takes its share of that hour's busy time and work.
Every amount is kept in integer nano-dollars (kpi_mapping/money.py); cents appear only where
a grouping is presented, by largest remainder, so every grouping plus idle is the bill.

Fully loaded cost shares each pod's idle over all priced requests in proportion to their
busy-time cost (OpenCost's "share idle"), so it adds up to the whole bill.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from collectors import usage
from kpi_mapping.money import NANO_PER_DOLLAR, dollars_to_nano, split_exact, to_cents

NANO_COLUMNS = ("input_nano", "output_nano", "loaded_input_nano", "loaded_output_nano")
REGIME_COLUMNS = ("pod", "start", "end", "gpu_count", "dollars_per_gpu_hour", "bill_nano",
                  "provisioned_gpu_s")


class NoGpuInventoryError(ValueError):
    """The store holds no GPU inventory, so there is no bill to allocate."""

    def __init__(self) -> None:
        super().__init__("no GPU inventory in the store: `llmkpi import gpus FILE` first"
                         " (docs/imports.md)")


@dataclass(frozen=True)
class Allocation:
    """Cost per usage row (nano-dollars; NA on unpriced rows) and the bill per pod.

    `usage`: the roll-up's rows (pod, hour, tenant, feature, model, requests, tokens, work)
    + input_nano, output_nano (busy-time cost) and loaded_input_nano, loaded_output_nano
    (fully loaded: idle shared).
    `pods`: pod, role (prefill, decode; "" for both), bill_cents, allocated_cents, idle_cents,
    busy_gpu_s, provisioned_gpu_s.
    `allocated_cents` / `bill_cents`: the totals every grouping of `usage` adds up to.
    """

    usage: pd.DataFrame
    pods: pd.DataFrame
    allocated_cents: int
    bill_cents: int

    @property
    def idle_cents(self) -> int:
        return int(self.pods["idle_cents"].sum())

    @property
    def priced(self) -> pd.DataFrame:
        return self.usage[self.usage["input_nano"].notna()]

    @property
    def requests(self) -> int:
        return int(self.usage["requests"].sum())

    @property
    def unpriced(self) -> pd.DataFrame:
        return self.usage[self.usage["input_nano"].isna()]

    def subset(self, mask: pd.Series, keys: dict[str, tuple[str, ...]]) -> Allocation:
        """The usage rows whose `keys` columns take the given values (tenant, model): their
        totals are the full allocation's grouping by those keys, summed over the chosen
        groups, so a selection shows exactly the cents the report shows for it."""
        names = sorted(keys)
        table = by(self, names)
        chosen = np.ones(len(table), dtype=bool)
        for name in names:
            chosen &= table[name].isin(keys[name]).to_numpy()
        return replace(self, usage=self.usage[mask],
                       allocated_cents=int(table.loc[chosen, "cents"].sum()),
                       bill_cents=int(table.loc[chosen, "loaded_cents"].sum()))


def regimes(gpus: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """The inventory rows that overlap [start, end), clipped to it, with their bill in
    nano-dollars (exact decimal arithmetic on the listed price) and GPU-seconds."""
    rows = []
    lo_period, hi_period = pd.Timestamp(start), pd.Timestamp(end)
    for item in gpus.sort_values(["pod", "valid_from"], kind="stable").to_dict("records"):
        valid_to = item["valid_to"] if pd.notna(item["valid_to"]) else hi_period
        lo = max(pd.Timestamp(item["valid_from"]), lo_period)
        hi = min(pd.Timestamp(valid_to), hi_period)
        if hi <= lo:
            continue
        seconds = Decimal((hi - lo).total_seconds()).quantize(Decimal("0.000001"))
        count = int(item["gpu_count"])
        price = Decimal(str(item["dollars_per_gpu_hour"]))
        rows.append({"pod": str(item["pod"]), "start": lo, "end": hi, "gpu_count": count,
                     "dollars_per_gpu_hour": float(price),
                     "bill_nano": dollars_to_nano(seconds * count * price / 3600),
                     "provisioned_gpu_s": float(seconds) * count})
    frame = pd.DataFrame(rows, columns=list(REGIME_COLUMNS))
    _refuse_overlaps(frame)
    return frame


def _refuse_overlaps(frame: pd.DataFrame) -> None:
    """Two open price rows for one pod would bill its GPUs twice: never sum them."""
    for pod, group in frame.groupby("pod", sort=True):
        ends, starts = group["end"].to_numpy()[:-1], group["start"].to_numpy()[1:]
        clash = np.flatnonzero(starts < ends)
        if len(clash):
            at = group.iloc[clash[0] + 1]
            raise ValueError(f"GPU inventory of pod {pod}: a row from {at['start']} overlaps"
                             " the row before it (one price per pod at a time)")


def _epoch(values: pd.Series) -> np.ndarray:
    return (values.astype("datetime64[ns, UTC]").astype("int64") / 1e9).to_numpy(
        dtype="float64")


def busy_gpu_seconds(spans: pd.DataFrame, regime_frame: pd.DataFrame) -> np.ndarray:
    """Busy GPU-seconds of each regime: Σ over the pod's busy spans of busy seconds × the
    span's share inside the regime × the regime's GPU count.

    `spans` (pod, start, end, busy_s in epoch seconds) are the exact busy blocks of the raw
    ledger (busy_s = end − start) or the roll-up's pod-hours (busy time spread evenly over
    the hour). Both KPI 2 and the cost allocation count busy time with this one function.
    """
    out = np.zeros(len(regime_frame))
    for index, regime in enumerate(regime_frame.to_dict("records")):
        mine = spans[spans["pod"] == regime["pod"]]
        if mine.empty:
            continue
        lo, hi = regime["start"].timestamp(), regime["end"].timestamp()
        s, e = mine["start"].to_numpy(dtype="float64"), mine["end"].to_numpy(dtype="float64")
        length = np.maximum(e - s, 1e-12)
        share = np.clip(np.minimum(e, hi) - np.maximum(s, lo), 0, None) / length
        clock = float(np.sum(mine["busy_s"].to_numpy(dtype="float64") * share))
        out[index] = min(clock, hi - lo) * regime["gpu_count"]
    return out


def _hour_epoch(values: pd.Series) -> np.ndarray:
    return (values.astype("datetime64[ns, UTC]").astype("int64") // 10**9).to_numpy(
        dtype="float64")


def pod_hour_spans(pod_hours: pd.DataFrame) -> pd.DataFrame:
    """The roll-up's pod-hours as busy spans for busy_gpu_seconds (busy time spread evenly
    over its hour: the hour is the unit the roll-up keeps)."""
    hour = _hour_epoch(pod_hours["hour"])
    return pd.DataFrame({"pod": pod_hours["pod"].astype(str).to_numpy(), "start": hour,
                         "end": hour + 3600.0,
                         "busy_s": pod_hours["busy_seconds"].to_numpy(dtype="float64")})


def allocate(ledger: pd.DataFrame, gpus: pd.DataFrame, start: datetime,
             end: datetime) -> Allocation:
    """Cost of [start, end) from raw ledger rows: their hourly summary (collectors/usage.py,
    the same the store's roll-up holds), then `allocate_usage`."""
    pod_hours, rows = usage.from_ledger(ledger)
    return allocate_usage(rows, pod_hours, gpus, start, end)


def allocate_usage(rows: pd.DataFrame, pod_hours: pd.DataFrame, gpus: pd.DataFrame,
                   start: datetime, end: datetime) -> Allocation:
    """Cost of [start, end) per usage row (pod, hour, tenant, feature, model) and per pod;
    rows no regime prices get NA. A regime takes the part of each hour it covers: its busy
    GPU-seconds are that share of the hour's busy time, and its used dollars are split over
    the hour's rows by that share of their prefill and decode work."""
    lo_period, hi_period = pd.Timestamp(start), pd.Timestamp(end)
    rows = rows[(rows["hour"] >= lo_period) & (rows["hour"] < hi_period)]
    rows = rows.sort_values(list(usage.KEYS), kind="stable").reset_index(drop=True)
    pod_hours = pod_hours[(pod_hours["hour"] >= lo_period) & (pod_hours["hour"] < hi_period)]
    regime_frame = regimes(gpus, start, end)
    busy = busy_gpu_seconds(pod_hour_spans(pod_hours), regime_frame)
    prefill = rows["prefill_us"].to_numpy(dtype="float64")
    decode = rows["decode_us"].to_numpy(dtype="float64")
    hour = _hour_epoch(rows["hour"])
    pods = rows["pod"].astype(str).to_numpy()
    input_nano = np.zeros(len(rows), dtype=np.int64)
    output_nano = np.zeros(len(rows), dtype=np.int64)
    priced = np.zeros(len(rows), dtype=bool)
    pod_rows: dict[str, dict[str, float]] = {}
    for index, regime in enumerate(regime_frame.to_dict("records")):
        lo, hi = regime["start"].timestamp(), regime["end"].timestamp()
        row = pod_rows.setdefault(regime["pod"], {"bill_nano": 0, "allocated_nano": 0,
                                                  "busy_gpu_s": 0.0, "provisioned_gpu_s": 0.0})
        row["bill_nano"] += regime["bill_nano"]
        row["busy_gpu_s"] += busy[index]
        row["provisioned_gpu_s"] += regime["provisioned_gpu_s"]
        where = np.flatnonzero(pods == regime["pod"])
        share = np.clip(np.minimum(hour[where] + 3600.0, hi) - np.maximum(hour[where], lo),
                        0, None) / 3600.0
        ran = share > 0
        if not ran.any():
            continue
        used_nano = int(regime["bill_nano"] * busy[index] // regime["provisioned_gpu_s"]) \
            if regime["provisioned_gpu_s"] else 0
        where, share = where[ran], share[ran]
        parts = split_exact(used_nano, np.concatenate([prefill[where] * share,
                                                       decode[where] * share]))
        input_nano[where] += parts[:len(where)]
        output_nano[where] += parts[len(where):]
        priced[where] = True
        row["allocated_nano"] += int(parts.sum())
    return _finish(rows, pod_rows, input_nano, output_nano, priced, pod_roles(pod_hours))


def pod_roles(pod_hours: pd.DataFrame) -> dict[str, str]:
    """Each pod's role in P/D disaggregation (prefill, decode; "" for both): that of its
    latest hour with requests or prefills (a sidecar's LLMKPI_ROLE, collectors/usage.py)."""
    if pod_hours.empty or "role" not in pod_hours:
        return {}
    counted = pod_hours[(pod_hours["requests"] + pod_hours.get("prefills", 0)) > 0]
    latest = counted.sort_values(["pod", "hour"], kind="stable").groupby("pod").last()
    return {str(pod): str(role or "") for pod, role in latest["role"].items()}


def _finish(rows: pd.DataFrame, pod_rows: dict[str, dict[str, float]],
            input_nano: np.ndarray, output_nano: np.ndarray, priced: np.ndarray,
            roles: dict[str, str]) -> Allocation:
    pods = pd.DataFrame([{"pod": pod, **row} for pod, row in sorted(pod_rows.items())],
                        columns=["pod", "bill_nano", "allocated_nano", "busy_gpu_s",
                                 "provisioned_gpu_s"])
    pods["role"] = [roles.get(str(pod), "") for pod in pods["pod"]]
    bill_nano = pods["bill_nano"].to_numpy(dtype=np.int64)
    idle_nano = bill_nano - pods["allocated_nano"].to_numpy(dtype=np.int64)
    bill_cents = to_cents(bill_nano)  # the bill rounded once, then split over pods
    idle_cents = np.array([to_cents(np.array([i, b - i]), int(c))[0] for i, b, c in
                           zip(idle_nano, bill_nano, bill_cents, strict=True)], dtype=np.int64)
    pods["bill_cents"] = bill_cents
    pods["idle_cents"] = idle_cents
    pods["allocated_cents"] = bill_cents - idle_cents
    # share idle: every priced request takes the fleet's idle by its busy-time cost
    busy_nano = input_nano + output_nano
    loaded = busy_nano.copy()
    if priced.any() and busy_nano[priced].sum() > 0:
        loaded[priced] += split_exact(int(idle_nano.sum()), busy_nano[priced].astype(float))
    # a request's fully loaded cost splits into input and output as its busy cost does
    input_share = np.divide(input_nano, busy_nano, out=np.zeros(len(busy_nano)),
                            where=busy_nano > 0)
    loaded_input = np.floor(loaded * input_share).astype(np.int64)
    columns = {"input_nano": input_nano, "output_nano": output_nano,
               "loaded_input_nano": loaded_input, "loaded_output_nano": loaded - loaded_input}
    for name, values in columns.items():
        rows[name] = pd.array(np.where(priced, values, 0), dtype="Int64")
        rows.loc[~priced, name] = pd.NA
    out = pods[["pod", "role", "bill_cents", "allocated_cents", "idle_cents", "busy_gpu_s",
                "provisioned_gpu_s"]]
    return Allocation(rows, out, int(out["allocated_cents"].sum()),
                      int(out["bill_cents"].sum()))


GROUP_KEYS = ("pod", "tenant", "feature", "model")


def over_hours(allocation: Allocation) -> Allocation:
    """The allocation with its usage rows summed over hours per (pod, tenant, feature, model),
    priced rows apart from unpriced ones. Every amount is an integer sum, so every grouping
    by those keys (`by`, `subset`, `per_million_tokens`, `margin_by_tenant`,
    `fleet_per_million`) is unchanged: a month in ~100 rows instead of thousands (what the
    page keeps of a closed period)."""
    rows = allocation.usage
    priced = rows["input_nano"].notna().rename("_priced")
    numeric = [c for c in rows.columns if c in usage.COUNTS or c in NANO_COLUMNS]
    summed = rows[[*GROUP_KEYS, *numeric]].assign(_priced=priced).groupby(
        [*GROUP_KEYS, "_priced"], sort=True)[numeric].sum().reset_index()
    for name in NANO_COLUMNS:
        summed[name] = summed[name].astype("Int64")
        summed.loc[~summed["_priced"], name] = pd.NA
    return replace(allocation, usage=summed.drop(columns="_priced"))


def by(allocation: Allocation, key: str | list[str]) -> pd.DataFrame:
    """Requests, tokens and cost by tenant, feature, model, pod (or several keys) over
    priced usage rows: busy-time cents (input + output) and fully loaded cents, each grouping
    rounded to add up to the allocation's totals."""
    priced = allocation.priced
    keys = [key] if isinstance(key, str) else key
    grouped = priced.groupby(keys, sort=True).agg(
        requests=("requests", "sum"), input_tokens=("input_tokens", "sum"),
        output_tokens=("output_tokens", "sum"),
        **{name: (name, "sum") for name in NANO_COLUMNS}).reset_index()
    for prefix, total in (("", allocation.allocated_cents), ("loaded_", allocation.bill_cents)):
        both = np.concatenate([grouped[f"{prefix}input_nano"].to_numpy(dtype=np.int64),
                               grouped[f"{prefix}output_nano"].to_numpy(dtype=np.int64)])
        cents = to_cents(both, total if len(grouped) else 0)
        grouped[f"{prefix}input_cents"] = cents[:len(grouped)]
        grouped[f"{prefix}output_cents"] = cents[len(grouped):]
        grouped[f"{prefix}cents"] = cents[:len(grouped)] + cents[len(grouped):]
    for name in ("input_tokens", "output_tokens"):
        grouped[name] = grouped[name].fillna(0).astype("int64")
    return grouped


ROLE_NAMES = {"prefill": "prefill", "decode": "decode", "": "prefill + decode"}


def by_role(allocation: Allocation) -> pd.DataFrame:
    """The bill by the pods' part in P/D disaggregation, each role priced per token of the
    work it does: prefill pods per prompt token they prefilled, decode pods per output
    token, pods doing both per input + output token. Cents are the pods' own (bill =
    allocated + idle, each role's sum of its pods', so the roles add up to the bill); $/M is
    the role's bill, its own idle included, ÷ its tokens. `queue_s_per_request`: the
    clients' requests' mean wait in the serving engine's queue — on decode pods it holds the
    wait for the KV transfer from the prefill pod."""
    pods = allocation.pods
    role_of = dict(zip(pods["pod"].astype(str), pods["role"].astype(str), strict=True))
    priced = allocation.priced
    work = priced.assign(role=priced["pod"].astype(str).map(role_of).fillna(""))
    rows = []
    for role, mine in pods.groupby("role", sort=True):
        served = work[work["role"] == role]
        tokens = int(served["prefill_tokens"].sum() if role == "prefill" else
                     served["output_tokens"].sum() if role == "decode" else
                     served["input_tokens"].sum() + served["output_tokens"].sum())
        requests = int(served["requests"].sum())
        bill, allocated = int(mine["bill_cents"].sum()), int(mine["allocated_cents"].sum())
        rows.append({
            "role": str(role), "name": ROLE_NAMES.get(str(role), str(role)),
            "pods": len(mine), "bill_cents": bill, "allocated_cents": allocated,
            "idle_cents": int(mine["idle_cents"].sum()),
            "busy_gpu_s": float(mine["busy_gpu_s"].sum()),
            "provisioned_gpu_s": float(mine["provisioned_gpu_s"].sum()),
            "requests": requests, "prefills": int(served["prefills"].sum()),
            "tokens": tokens,
            "per_m_tokens": bill / 100 / tokens * 1e6 if tokens else None,
            "busy_per_m_tokens": allocated / 100 / tokens * 1e6 if tokens else None,
            "queue_s_per_request": float(served["queue_us"].sum()) / 1e6 / requests
            if requests else None})
    return pd.DataFrame(rows, columns=["role", "name", "pods", "bill_cents", "allocated_cents",
                                       "idle_cents", "busy_gpu_s", "provisioned_gpu_s",
                                       "requests", "prefills", "tokens", "per_m_tokens",
                                       "busy_per_m_tokens", "queue_s_per_request"])


def _per_million(nano: pd.Series, tokens: pd.Series) -> pd.Series:
    dollars = nano.astype("float64") / NANO_PER_DOLLAR
    return (dollars / tokens.astype("float64") * 1e6).where(tokens > 0)


def per_million_tokens(allocation: Allocation) -> pd.DataFrame:
    """$ per million tokens per model, input / output / blended, fully loaded (the bill,
    idle included, ÷ tokens) and busy-time (allocated cost ÷ tokens)."""
    table = by(allocation, "model")
    tokens = table["input_tokens"] + table["output_tokens"]
    for basis, prefix in (("loaded", "loaded_"), ("busy", "")):
        table[f"{basis}_input_per_m"] = _per_million(table[f"{prefix}input_nano"],
                                                     table["input_tokens"])
        table[f"{basis}_output_per_m"] = _per_million(table[f"{prefix}output_nano"],
                                                      table["output_tokens"])
        table[f"{basis}_blended_per_m"] = _per_million(
            table[f"{prefix}input_nano"] + table[f"{prefix}output_nano"], tokens)
    return table


def fleet_per_million(allocation: Allocation) -> dict[str, float | None]:
    """The whole fleet's $ per million tokens: fully loaded = bill ÷ priced tokens;
    busy-time = allocated ÷ priced tokens."""
    priced = allocation.priced
    tokens = float(priced["input_tokens"].sum() + priced["output_tokens"].sum())
    if not tokens:
        return {"fully_loaded": None, "busy_time": None}
    loaded = float(priced["loaded_input_nano"].sum() + priced["loaded_output_nano"].sum())
    busy = float(priced["input_nano"].sum() + priced["output_nano"].sum())
    return {"fully_loaded": loaded / NANO_PER_DOLLAR / tokens * 1e6,
            "busy_time": busy / NANO_PER_DOLLAR / tokens * 1e6}


MARGIN_BASES = ("fully_loaded", "busy_time")


def margin_by_tenant(allocation: Allocation, revenue: pd.DataFrame,
                     basis: str = "fully_loaded") -> pd.DataFrame:
    """Revenue, GPU cost and gross margin per tenant where revenue is known, fully loaded
    (idle shared, the CFO's figure) and busy-time beside; `margin` is the chosen basis."""
    if basis not in MARGIN_BASES:
        raise ValueError(f"margin basis must be one of {MARGIN_BASES}, got {basis!r}")
    cost = by(allocation, "tenant")[["tenant", "cents", "loaded_cents"]]
    money = revenue.groupby("tenant", sort=True)["revenue"].sum().reset_index()
    table = money.merge(cost, on="tenant", how="left")
    table["gpu_cost_busy_time"] = table["cents"].fillna(0).astype("float64") / 100
    table["gpu_cost_fully_loaded"] = table["loaded_cents"].fillna(0).astype("float64") / 100
    for name in MARGIN_BASES:
        table[f"margin_{name}"] = ((table["revenue"] - table[f"gpu_cost_{name}"])
                                   / table["revenue"]).where(table["revenue"] > 0)
    table["gpu_cost"] = table[f"gpu_cost_{basis}"]
    table["margin"] = table[f"margin_{basis}"]
    table["basis"] = basis
    return table[["tenant", "revenue", "gpu_cost", "margin", "basis", "gpu_cost_fully_loaded",
                  "margin_fully_loaded", "gpu_cost_busy_time", "margin_busy_time"]]
