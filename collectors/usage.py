"""The ledger summed per hour: one definition, used by the roll-up on the store and by any
caller that starts from raw rows in memory, so both give the same numbers.

`summarise` turns raw ledger rows into
- pod-hours: requests, outcomes, tokens, busy time (the union of the pod's requests' engine
  intervals [arrival + queue, arrival + e2e), clipped to the hour: concurrent requests share
  the GPU) and TTFT / end-to-end bins for the KPI layer;
- usage rows per (pod, hour, tenant, feature, model): requests, outcomes, tokens, the charged
  prefill and decode work (what cost allocation splits the bill by), TTFT bins and per-gap
  ITL bins on the catalogue's histogram bounds (what the SLOs and p95s are judged on).

Every time is whole microseconds and every sum an integer, so the result does not depend on
how rows are chunked or ordered: a roll-up built incrementally equals one built at once, and
cost and KPIs computed from the roll-up equal those computed from the raw rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from collectors.bins import gap_counts  # noqa: F401 - one definition, read from here too
from specs.availability import SERVER_FAILURE_OUTCOMES, THROTTLED_STATUS
from specs.catalog import ITL_BUCKETS, LEDGER_LATENCY_BUCKETS, TTFT_BUCKETS

HOUR_US = 3_600_000_000
US = 1_000_000
LATENCY_BOUNDS = LEDGER_LATENCY_BUCKETS.bounds  # pod-hours' TTFT and e2e bins (KPI layer)
TTFT_BOUNDS = TTFT_BUCKETS.bounds  # usage rows: the live histogram's own bounds
ITL_BOUNDS = ITL_BUCKETS.bounds
KEYS = ("pod", "hour", "tenant", "feature", "model")
# the raw columns summarise reads; arrival_us is the arrival in microseconds since 1970
RAW = ("pod", "tenant", "feature", "model", "arrival_us", "outcome", "http_status",
       "queue_time", "e2e_latency", "time_to_first_token", "prefill_time", "decode_time",
       "prompt_tokens", "cached_prompt_tokens", "output_tokens", "mean_inter_token_latency",
       "itl_counts", "role")
# prefills / prefill_tokens: requests (and their prompt tokens) a prefill-role engine
# prefilled for a decode engine (RequestRecord.role); queue_us: time clients' requests
# waited in the serving engine's queue (on a P/D decode engine: for their KV too)
COUNTS = ("requests", "ok", "failed", "throttled", "cancelled", "input_tokens",
          "cached_tokens", "output_tokens", "prefill_us", "decode_us", "prefills",
          "prefill_tokens", "queue_us")
HOUR_COLUMNS = ("pod", "hour", "requests", "ok", "failed", "throttled", "cancelled",
                "input_tokens", "output_tokens", "busy_seconds", "ttft_counts", "e2e_counts",
                "prefills", "role")
PREFILL, DECODE = "prefill", "decode"  # RequestRecord.role; "" does both


# --- bins ----------------------------------------------------------------------------------

def bin_index(values: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """The bin of each value: bounds[i−1] < v ≤ bounds[i] (Prometheus' `le`); one more bin
    for what lies above the last bound."""
    return np.searchsorted(np.asarray(bounds), values, side="left")


def encode(counts: np.ndarray) -> str:
    """Bin counts as sparse JSON ({"bin": count}, no spaces): most rows fill a handful of
    bins. Built as text (the same bytes json.dumps writes): a year of roll-up is ~1 M rows."""
    values = counts.tolist()
    return "{" + ",".join(f'"{i}":{int(values[i])}' for i in np.flatnonzero(counts).tolist()
                          ) + "}"


def decode(texts: Iterable[object], width: int) -> np.ndarray:
    """Sparse or dense (a JSON list) bin counts as a dense matrix, one row per text; a
    missing text (None, NaN, "") is a row of zeros.

    Objects of bin numbers ({"3":5,"4":10}, what `encode` writes) are parsed together by
    numpy (a month of roll-up is ~30k rows; json.loads on each was most of the page's filter
    switch); anything else, or objects that do not parse that way, by json.loads."""
    texts = list(texts)
    out = np.zeros((len(texts), width), dtype=np.int64)
    objects: list[str] = []
    rows: list[int] = []
    for row, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            continue
        if text[0] == "{" and text[-1] == "}":
            if len(text) > 2:
                objects.append(text[1:-1])
                rows.append(row)
            continue
        _decode_one(out, row, text)
    if objects and not _decode_objects(out, objects, rows):
        for row, text in zip(rows, objects, strict=True):
            _decode_one(out, row, "{" + text + "}")
    return out


def _decode_objects(out: np.ndarray, objects: list[str], rows: list[int]) -> bool:
    """Fill `out` from the insides of {"bin":count,...} objects at once; False (nothing
    written) when they are not all in that form."""
    pairs = [text.count(":") for text in objects]
    joined = ",".join(objects).replace('"', "").replace(":", ",")
    try:
        numbers = np.fromstring(joined, dtype=np.int64, sep=",")
    except ValueError:
        return False
    if len(numbers) != 2 * sum(pairs):
        return False
    keys, counts = numbers[0::2], numbers[1::2]
    if len(keys) and (keys.min() < 0 or keys.max() >= out.shape[1]):
        return False  # json.loads says which bin does not exist
    out[np.repeat(np.asarray(rows), pairs), keys] = counts
    return True


def _decode_one(out: np.ndarray, row: int, text: str) -> None:
    doc = json.loads(text)
    if isinstance(doc, list):
        out[row, :len(doc)] = doc
    else:
        for key, count in doc.items():
            out[row, int(key)] = count


# --- charged work and busy time ---------------------------------------------------------------

def _floats(frame: pd.DataFrame, name: str) -> np.ndarray:
    return np.asarray(pd.to_numeric(frame[name], errors="coerce"), dtype="float64")


def charged_seconds(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Charged prefill and decode seconds per request. The plugin measures both; for the
    sidecar's rows prefill is TTFT less queue time and decode the rest of the request.
    Prefill is scaled down by the share of the prompt served from the prefix cache."""
    ttft, queue = _floats(frame, "time_to_first_token"), np.nan_to_num(
        _floats(frame, "queue_time"))
    prefill, decode_ = _floats(frame, "prefill_time"), _floats(frame, "decode_time")
    prefill = np.where(np.isnan(prefill), np.clip(ttft - queue, 0, None), prefill)
    decode_ = np.where(np.isnan(decode_), np.clip(_floats(frame, "e2e_latency") - ttft, 0, None),
                       decode_)
    prompt, cached = _floats(frame, "prompt_tokens"), np.nan_to_num(
        _floats(frame, "cached_prompt_tokens"))
    with np.errstate(invalid="ignore", divide="ignore"):
        uncached = np.where(prompt > 0, np.clip((prompt - cached) / prompt, 0.0, 1.0), 1.0)
    return np.nan_to_num(prefill * uncached), np.nan_to_num(decode_)


def _ints(frame: pd.DataFrame, name: str) -> np.ndarray:
    return np.asarray(np.nan_to_num(_floats(frame, name)), dtype=np.int64)


def micros(seconds: np.ndarray) -> np.ndarray:
    return np.asarray(np.rint(np.nan_to_num(seconds) * US), dtype=np.int64)


def union_blocks(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of [start, end) intervals as sorted disjoint blocks (a sorted sweep):
    concurrent requests occupy the engine once. Empty intervals are left out."""
    keep = ends > starts
    if not keep.any():
        return np.zeros(0, dtype=starts.dtype), np.zeros(0, dtype=ends.dtype)
    order = np.argsort(starts[keep], kind="stable")
    s, e = starts[keep][order], ends[keep][order]
    reach = np.maximum.accumulate(e)
    new_block = np.empty(len(s), dtype=bool)
    new_block[0] = True
    new_block[1:] = s[1:] > reach[:-1]
    return s[new_block], np.maximum.reduceat(e, np.flatnonzero(new_block))


def busy_by_hour(starts_us: np.ndarray, ends_us: np.ndarray, origin_us: int,
                 hours: int) -> np.ndarray:
    """Microseconds of the union of [start, end) intervals in each hour from origin."""
    busy = np.zeros(hours, dtype=np.int64)
    lo, hi = union_blocks(starts_us, ends_us)
    if not len(lo):
        return busy
    lo = np.clip(lo - origin_us, 0, hours * HOUR_US)
    hi = np.clip(hi - origin_us, 0, hours * HOUR_US)
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    first, last = lo // HOUR_US, (hi - 1) // HOUR_US
    same = first == last
    np.add.at(busy, first[same], hi[same] - lo[same])
    for a, b in zip(lo[~same].tolist(), hi[~same].tolist(), strict=True):  # crossing hours
        at = a
        while b > at:
            edge = min(b, (at // HOUR_US + 1) * HOUR_US)
            busy[at // HOUR_US] += edge - at
            at = edge
    return busy


# --- the summary ------------------------------------------------------------------------------

def summarise(raw: pd.DataFrame, start_us: int, hours: int, encoded: bool = True
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pod-hours, usage rows) of the hours [start, start + hours) from raw ledger rows
    (the RAW columns). Rows arriving before start still add their busy time to the hours
    they reach; only rows arriving inside are counted. Without `encoded` the bin columns
    hold count arrays instead of sparse JSON (for a caller that works on them further)."""
    hour_frames, usage_frames = [], []
    pack = encode if encoded else _same
    for pod, rows in raw.groupby("pod", sort=True):
        pod_hours, usage = _pod(str(pod), rows.reset_index(drop=True), start_us, hours, pack)
        hour_frames.append(pod_hours)
        usage_frames.append(usage)
    pod_hours = pd.concat(hour_frames, ignore_index=True) if hour_frames else \
        pd.DataFrame(columns=list(HOUR_COLUMNS))
    usage = pd.concat(usage_frames, ignore_index=True) if usage_frames else \
        pd.DataFrame(columns=[*KEYS, *COUNTS, "ttft_counts", "itl_counts"])
    return pod_hours, usage


def _same(counts: np.ndarray) -> np.ndarray:
    return counts


def _pod(pod: str, rows: pd.DataFrame, start_us: int, hours: int,
         pack: Callable[[np.ndarray], Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    arrival = rows["arrival_us"].to_numpy(dtype=np.int64)
    begin = arrival + micros(_floats(rows, "queue_time"))
    end = np.maximum(arrival + micros(_floats(rows, "e2e_latency")), begin)
    busy = busy_by_hour(begin, end, start_us, hours)
    inside = (arrival >= start_us) & (arrival < start_us + hours * HOUR_US)
    mine = rows[inside].reset_index(drop=True)
    slot = (arrival[inside] - start_us) // HOUR_US
    outcome = mine["outcome"].to_numpy(dtype=object)
    status = pd.to_numeric(mine["http_status"], errors="coerce").to_numpy()
    failed, cancelled = np.isin(outcome, SERVER_FAILURE_OUTCOMES), outcome == "cancelled"
    mine = mine.assign(
        slot=slot, ok=(outcome == "ok").astype(np.int64), failed=failed.astype(np.int64),
        # answered 429 and neither failed nor cancelled: failed + throttled never counts a
        # request twice where availability counts 429s as failures
        throttled=((status == THROTTLED_STATUS) & ~failed & ~cancelled).astype(np.int64),
        cancelled=cancelled.astype(np.int64),
        input_tokens=_ints(mine, "prompt_tokens"),
        cached_tokens=_ints(mine, "cached_prompt_tokens"),
        output_tokens=_ints(mine, "output_tokens"))
    prefill, decode_ = charged_seconds(mine)
    mine["prefill_us"], mine["decode_us"] = micros(prefill), micros(decode_)
    mine["queue_us"] = micros(_floats(mine, "queue_time"))
    return _by_role(pod, mine, busy, start_us, pack)


def _roles(frame: pd.DataFrame) -> np.ndarray:
    if "role" not in frame:
        return np.full(len(frame), "", dtype=object)
    return frame["role"].fillna("").astype(str).to_numpy(dtype=object)


def _by_role(pod: str, mine: pd.DataFrame, busy: np.ndarray, start_us: int,
             pack: Callable[[np.ndarray], Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tokens counted once across roles: a prefill-role row is the prefill pod's GPU work
    for a request the decode pod's sidecar records — its work is all prefill (charged to
    input tokens), it counts as a prefill and its prompt as prefill tokens, never as a
    request, tokens, outcome or latency. A decode-role row's work is all decode (charged to
    output tokens: the decode engine only loads the KV and computes the last token)."""
    role = _roles(mine)
    remote = role == PREFILL
    work = mine["prefill_us"].to_numpy(dtype=np.int64) + mine["decode_us"].to_numpy(
        dtype=np.int64)
    mine["requests"] = (~remote).astype(np.int64)
    mine["prefills"] = remote.astype(np.int64)
    mine["prefill_tokens"] = np.where(remote, mine["input_tokens"], 0)
    for name in ("ok", "failed", "throttled", "cancelled", "input_tokens", "cached_tokens",
                 "output_tokens", "queue_us"):
        mine[name] = np.where(remote, 0, mine[name].to_numpy(dtype=np.int64))
    mine["prefill_us"] = np.where(remote, work, np.where(role == DECODE, 0,
                                                         mine["prefill_us"]))
    mine["decode_us"] = np.where(remote, 0, np.where(role == DECODE, work, mine["decode_us"]))
    mine["role"] = role
    return _hours(pod, mine, busy, start_us, pack), _usage(pod, mine, start_us, pack)


def _stamp(start_us: int, slots: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime((start_us + slots * HOUR_US), unit="us", utc=True))


def _hours(pod: str, mine: pd.DataFrame, busy: np.ndarray, start_us: int,
           pack: Callable[[np.ndarray], Any]) -> pd.DataFrame:
    hours = len(busy)
    slot = mine["slot"].to_numpy(dtype=np.int64)
    width = len(LATENCY_BOUNDS) + 1

    def per_hour(name: str) -> np.ndarray:
        return np.bincount(slot, weights=mine[name].to_numpy(dtype="float64"),
                           minlength=hours)[:hours].astype(np.int64)

    client = mine["requests"].to_numpy(dtype=bool)

    def bins(values: np.ndarray) -> np.ndarray:
        known = ~np.isnan(values) & client
        index = slot[known] * width + bin_index(values[known], LATENCY_BOUNDS)
        return np.bincount(index, minlength=hours * width).reshape(hours, width)

    requests, prefills = per_hour("requests"), per_hour("prefills")
    ttft, e2e = bins(_floats(mine, "time_to_first_token")), bins(_floats(mine, "e2e_latency"))
    used = np.flatnonzero((requests > 0) | (prefills > 0) | (busy > 0))
    frame = pd.DataFrame({"pod": pod, "hour": _stamp(start_us, used), "requests": requests[used]})
    for name in ("ok", "failed", "throttled", "cancelled", "input_tokens", "output_tokens"):
        frame[name] = per_hour(name)[used]
    frame["busy_seconds"] = busy[used] / US
    frame["ttft_counts"] = [pack(ttft[h]) for h in used]
    frame["e2e_counts"] = [pack(e2e[h]) for h in used]
    frame["prefills"] = prefills[used]
    frame["role"] = _hour_roles(mine["role"].to_numpy(dtype=object), slot, hours)[used]
    return frame


def _hour_roles(role: np.ndarray, slot: np.ndarray, hours: int) -> np.ndarray:
    """Each hour's role: that of the requests arriving in it (a pod has one; were it
    reconfigured inside an hour, the greatest name, so the order of rows never matters);
    "" for an hour with none."""
    out = np.full(hours, "", dtype=object)
    if len(slot):
        order = np.lexsort((role.astype(str), slot))
        out[slot[order]] = role[order]  # the last write of a slot wins
    return out


def _itl(mine: pd.DataFrame) -> np.ndarray:
    """Per-request gap counts: the ledger's bins, else (rows from before the ledger kept
    them, or an engine that reports a mean only) every gap in the bin of the mean gap."""
    width = len(ITL_BOUNDS) + 1
    counts = decode(mine["itl_counts"], width)
    missing = counts.sum(axis=1) == 0
    mean = _floats(mine, "mean_inter_token_latency")
    gaps = np.clip(np.nan_to_num(_floats(mine, "output_tokens")) - 1, 0, None).astype(np.int64)
    fill = missing & ~np.isnan(mean) & (gaps > 0)
    counts[np.flatnonzero(fill), bin_index(mean[fill], ITL_BOUNDS)] = gaps[fill]
    return counts


def _usage(pod: str, mine: pd.DataFrame, start_us: int,
           pack: Callable[[np.ndarray], Any]) -> pd.DataFrame:
    columns = [*KEYS, *COUNTS, "ttft_counts", "itl_counts"]
    if mine.empty:
        return pd.DataFrame(columns=columns)
    keys = ["slot", "tenant", "feature", "model"]
    group = mine.groupby(keys, sort=True).ngroup().to_numpy()
    sums = mine.groupby(keys, sort=True)[list(COUNTS)].sum().reset_index()
    count = len(sums)
    ttft = _floats(mine, "time_to_first_token")
    client = mine["requests"].to_numpy(dtype=bool)
    known = ~np.isnan(ttft) & client
    width = len(TTFT_BOUNDS) + 1
    ttft_bins = np.bincount(group[known] * width + bin_index(ttft[known], TTFT_BOUNDS),
                            minlength=count * width).reshape(count, width)
    itl_bins = np.zeros((count, len(ITL_BOUNDS) + 1), dtype=np.int64)
    np.add.at(itl_bins, group[client], _itl(mine[client]))
    sums.insert(0, "hour", _stamp(start_us, sums.pop("slot").to_numpy(dtype=np.int64)))
    sums.insert(0, "pod", pod)
    sums["ttft_counts"] = [pack(row) for row in ttft_bins]
    sums["itl_counts"] = [pack(row) for row in itl_bins]
    for name in COUNTS:
        sums[name] = sums[name].astype(np.int64)
    return sums[columns]


def from_ledger(ledger: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """summarise over every hour a ledger frame (arrival as UTC times) touches: what a
    caller holding raw rows in memory uses in place of the store's roll-up."""
    if ledger.empty:
        return summarise(pd.DataFrame(columns=list(RAW)), 0, 0)
    raw = ledger.copy()
    for name in RAW:
        if name not in raw:
            raw[name] = None
    raw["arrival_us"] = pd.to_datetime(raw["arrival"], utc=True).astype(
        "datetime64[us, UTC]").astype("int64")
    first = int(raw["arrival_us"].min()) // HOUR_US * HOUR_US
    last = int((raw["arrival_us"] + micros(_floats(raw, "e2e_latency"))).max())
    return summarise(raw[list(RAW)], first, last // HOUR_US - first // HOUR_US + 1)
