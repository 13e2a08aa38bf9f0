"""GPU-dollar cost per token: the period's GPU bill, allocated to requests, idle on its own line.

Per pod: the bill is GPU-hours × $/GPU-hour over the inventory rows that overlap the period.
The used part is the bill × busy time / provisioned time, where busy time is the union of the
pod's requests' engine intervals (a batch of concurrent requests occupies the GPU once, not
once per request). The used part is split among the pod's requests by measured prefill +
decode time (OpenCost's compute-time method), prefill scaled down by the share of prompt
tokens served from the prefix cache. The rest of the bill is idle. Amounts are whole cents
split by largest remainder, so the parts plus idle add back to the bill exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

LEDGER_COLUMNS = ("pod", "model", "tenant", "feature", "arrival", "finish", "outcome",
                  "time_to_first_token", "e2e_latency", "queue_time", "prefill_time",
                  "decode_time", "prompt_tokens", "cached_prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Allocation:
    """Per-request cost (cents, input and output parts) and the bill per pod."""

    requests: pd.DataFrame  # ledger columns + input_cents, output_cents, cents (NA: unpriced)
    pods: pd.DataFrame  # pod, bill_cents, allocated_cents, idle_cents, busy_s, provisioned_s

    @property
    def bill_cents(self) -> int:
        return int(self.pods["bill_cents"].sum())

    @property
    def idle_cents(self) -> int:
        return int(self.pods["idle_cents"].sum())


def pod_bills(gpus: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Bill = Σ overlap hours × gpu_count × $/GPU-hour per pod (inventory rows may change
    price or count inside the period). Provisioned seconds count GPU-seconds."""
    rows = []
    for pod, group in gpus.groupby("pod", sort=True):
        dollars = provisioned = 0.0
        for item in group.to_dict("records"):
            valid_to = item["valid_to"] if pd.notna(item["valid_to"]) else end
            lo = max(pd.Timestamp(item["valid_from"]), pd.Timestamp(start))
            hi = min(pd.Timestamp(valid_to), pd.Timestamp(end))
            seconds = max(0.0, (hi - lo).total_seconds())
            gpus_held = float(item["gpu_count"])
            dollars += seconds / 3600 * gpus_held * float(item["dollars_per_gpu_hour"])
            provisioned += seconds * gpus_held
        rows.append({"pod": str(pod), "bill_cents": round(dollars * 100),
                     "provisioned_s": provisioned})
    return pd.DataFrame(rows, columns=["pod", "bill_cents", "provisioned_s"])


def engine_times(ledger: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Charged prefill and decode seconds per request. The plugin measures both; for the
    sidecar's rows prefill is TTFT less queue time and decode the rest of the request."""
    ttft = ledger["time_to_first_token"].astype("float64")
    queue = ledger["queue_time"].astype("float64").fillna(0.0)
    prefill = ledger["prefill_time"].astype("float64").fillna((ttft - queue).clip(lower=0))
    decode = ledger["decode_time"].astype("float64").fillna(
        (ledger["e2e_latency"].astype("float64") - ttft).clip(lower=0))
    prompt = ledger["prompt_tokens"].astype("float64")
    cached = ledger["cached_prompt_tokens"].astype("float64").fillna(0.0)
    uncached = ((prompt - cached) / prompt).where(prompt > 0, 1.0).clip(0.0, 1.0)
    return (prefill * uncached).fillna(0.0), decode.fillna(0.0)


def busy_seconds(starts: np.ndarray, ends: np.ndarray) -> float:
    """Length of the union of [start, end) intervals (sorted sweep, vectorised)."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    reach = np.maximum.accumulate(e)
    new_block = np.empty(len(s), dtype=bool)
    new_block[0] = True
    new_block[1:] = s[1:] > reach[:-1]
    block_start = s[new_block]
    block_end = np.maximum.reduceat(e, np.flatnonzero(new_block))
    return float(np.sum(block_end - block_start))


def split_cents(total: int, weights: np.ndarray) -> np.ndarray:
    """Whole cents proportional to weights, summing to total exactly (largest remainder)."""
    if total == 0 or len(weights) == 0:
        return np.zeros(len(weights), dtype=np.int64)
    weight_sum = float(weights.sum())
    if weight_sum <= 0:
        weights = np.ones(len(weights))
        weight_sum = float(len(weights))
    exact = weights / weight_sum * total
    floor = np.floor(exact).astype(np.int64)
    short = total - int(floor.sum())
    if short:
        floor[np.argsort(-(exact - floor), kind="stable")[:short]] += 1
    return floor


def allocate(ledger: pd.DataFrame, gpus: pd.DataFrame, start: datetime,
             end: datetime) -> Allocation:
    """Cost of [start, end) per request and per pod; requests of unpriced pods get NA."""
    in_period = ledger[(ledger["arrival"] >= start) & (ledger["arrival"] < end)].copy()
    prefill, decode = engine_times(in_period)
    in_period["input_cents"] = pd.Series(pd.NA, index=in_period.index, dtype="Int64")
    in_period["output_cents"] = pd.Series(pd.NA, index=in_period.index, dtype="Int64")
    bills = pod_bills(gpus, start, end)
    out = []
    # seconds since the period's start, vectorised (a per-row Timestamp call costs ~1 µs each)
    arrival_s = ((in_period["arrival"] - pd.Timestamp(start)).dt.total_seconds()
                 .to_numpy(dtype="float64"))
    queue = in_period["queue_time"].astype("float64").fillna(0.0).to_numpy()
    e2e = in_period["e2e_latency"].astype("float64").fillna(0.0).to_numpy()
    for bill in bills.to_dict("records"):
        pod, bill_cents = str(bill["pod"]), int(bill["bill_cents"])
        provisioned = float(bill["provisioned_s"])
        mask = (in_period["pod"] == pod).to_numpy()
        busy = busy_seconds(arrival_s[mask] + queue[mask], arrival_s[mask] + e2e[mask])
        busy = min(busy, provisioned) if provisioned else 0.0
        used = round(bill_cents * busy / provisioned) if provisioned else 0
        work = np.concatenate([prefill.to_numpy()[mask], decode.to_numpy()[mask]])
        parts = split_cents(used if mask.any() else 0, work)
        half = int(mask.sum())
        index = in_period.index[mask]
        in_period.loc[index, "input_cents"] = parts[:half]
        in_period.loc[index, "output_cents"] = parts[half:]
        allocated = int(parts.sum())
        out.append({"pod": pod, "bill_cents": bill_cents, "allocated_cents": allocated,
                    "idle_cents": bill_cents - allocated, "busy_s": busy,
                    "provisioned_s": provisioned})
    in_period["cents"] = in_period["input_cents"] + in_period["output_cents"]
    pods = pd.DataFrame(out, columns=["pod", "bill_cents", "allocated_cents", "idle_cents",
                                      "busy_s", "provisioned_s"])
    return Allocation(in_period, pods)


def by(allocation: Allocation, key: str) -> pd.DataFrame:
    """Cost, requests and tokens by tenant, feature or model (priced requests)."""
    priced = allocation.requests[allocation.requests["cents"].notna()]
    grouped = priced.groupby(key, sort=True).agg(
        requests=("cents", "size"), input_tokens=("prompt_tokens", "sum"),
        output_tokens=("output_tokens", "sum"), input_cents=("input_cents", "sum"),
        output_cents=("output_cents", "sum"), cents=("cents", "sum"))
    return grouped.reset_index()


def per_million_tokens(allocation: Allocation) -> pd.DataFrame:
    """$ per million input tokens, output tokens and blended, per model."""
    table = by(allocation, "model")

    def rate(cents: pd.Series, tokens: pd.Series) -> pd.Series:
        return (cents.astype("float64") / 100 / tokens.astype("float64") * 1e6).where(tokens > 0)

    table["input_per_m"] = rate(table["input_cents"], table["input_tokens"])
    table["output_per_m"] = rate(table["output_cents"], table["output_tokens"])
    table["blended_per_m"] = rate(table["cents"],
                                  table["input_tokens"] + table["output_tokens"])
    return table


def margin_by_tenant(allocation: Allocation, revenue: pd.DataFrame) -> pd.DataFrame:
    """Revenue, GPU cost and gross margin per tenant where revenue is known."""
    cost = by(allocation, "tenant")[["tenant", "cents"]]
    money = revenue.groupby("tenant", sort=True)["revenue"].sum().reset_index()
    table = money.merge(cost, on="tenant", how="left")
    table["cents"] = table["cents"].fillna(0)
    table["gpu_cost"] = table["cents"].astype("float64") / 100
    table["margin"] = ((table["revenue"] - table["gpu_cost"]) / table["revenue"]).where(
        table["revenue"] > 0)
    return table[["tenant", "revenue", "gpu_cost", "margin"]]
