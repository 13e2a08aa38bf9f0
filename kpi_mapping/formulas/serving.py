"""Serving KPIs from the hourly ledger roll-up, engine readings and the GPU inventory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from collectors.rollup import LATENCY_BOUNDS
from kpi_mapping import cost
from kpi_mapping.values import Value, none, number, ratio

WITHIN_SLO_SHARE = 0.95  # an hour is within the TTFT SLO when its p95 is under the threshold
MAX_FAILED_SHARE = 0.01


@dataclass(frozen=True)
class Hours:
    """Roll-up rows (pod, hour, requests, ok, failed, tokens, busy_seconds) and their
    latency bins, one row of `ttft` and `e2e` per roll-up row."""

    frame: pd.DataFrame
    ttft: np.ndarray
    e2e: np.ndarray

    def where(self, mask: np.ndarray) -> Hours:
        return Hours(self.frame[mask].reset_index(drop=True), self.ttft[mask], self.e2e[mask])

    def between(self, start: datetime, end: datetime) -> Hours:
        hour = self.frame["hour"]
        return self.where(((hour >= start) & (hour < end)).to_numpy(dtype=bool))


def no_hours() -> Hours:
    frame = pd.DataFrame({name: pd.Series(dtype="int64") for name in (
        "requests", "ok", "failed", "throttled", "cancelled", "input_tokens",
        "output_tokens")})
    frame.insert(0, "hour", pd.Series(dtype="datetime64[ns, UTC]"))
    frame.insert(0, "pod", pd.Series(dtype="object"))
    frame["busy_seconds"] = pd.Series(dtype="float64")
    empty = np.zeros((0, len(LATENCY_BOUNDS) + 1))
    return Hours(frame, empty, empty.copy())


def histogram_quantile(bins: np.ndarray, bounds: Sequence[float], q: float) -> float | None:
    """Prometheus' histogram_quantile over counts per bin (one more bin than bounds, for
    what lies above the last): linear inside the bin from the bound below (0 for the
    first), the last finite bound for the overflow bin."""
    total = float(bins.sum())
    if not total:
        return None
    rank = q * total
    cumulative = np.cumsum(bins)
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if index >= len(bounds):
        return float(bounds[-1])
    lower = bounds[index - 1] if index else 0.0
    below = float(cumulative[index - 1]) if index else 0.0
    inside = float(bins[index])
    return float(lower + (bounds[index] - lower) * (rank - below) / inside)


def quantile(bins: np.ndarray, q: float) -> float | None:
    """histogram_quantile over the pod-hour roll-up's latency bins."""
    return histogram_quantile(bins, LATENCY_BOUNDS, q)


def utilization(hours: Hours, gpus: pd.DataFrame, snapshots: pd.DataFrame,
                start: datetime, end: datetime) -> Value:
    """busy GPU-seconds / provisioned GPU-seconds; busy = the union of the pod's requests'
    engine time × the GPU count in force (cost.busy_gpu_seconds, the cost report's own
    definition; the roll-up's pod-hours are its busy spans). Mean KV usage beside."""
    regime_frame = cost.regimes(gpus, start, end)
    frame = hours.frame
    hour = (frame["hour"].astype("datetime64[ns, UTC]").astype("int64") / 1e9).to_numpy(
        dtype="float64")
    spans = pd.DataFrame({"pod": frame["pod"].astype(str), "start": hour, "end": hour + 3600,
                          "busy_s": frame["busy_seconds"].astype("float64")})
    busy = float(cost.busy_gpu_seconds(spans, regime_frame).sum())
    provisioned = float(regime_frame["provisioned_gpu_s"].sum())
    kv = snapshots["kv_cache_usage"].dropna()
    return ratio(busy, provisioned, "no GPUs provisioned in the period",
                 busy_gpu_hours=round(busy / 3600, 2),
                 provisioned_gpu_hours=round(provisioned / 3600, 2),
                 mean_kv_cache_usage=round(float(kv.mean()), 4) if len(kv) else None)


def bad_events(frame: pd.DataFrame, throttled_is_failure: bool) -> pd.Series:
    """Requests that count against availability per roll-up row: server-side failures, and
    429s where the config counts them (engine_shim.records.is_server_failure)."""
    bad = frame["failed"].astype("float64")
    return bad + frame["throttled"].astype("float64") if throttled_is_failure else bad


def uptime(snapshots: pd.DataFrame, hours: Hours, start: datetime, end: datetime,
           throttled_is_failure: bool = False) -> Value:
    """(period − downtime) / period: the share of engine readings that found the engine up
    (readings are evenly spaced per engine); without readings, 1 − server-side failures /
    requests not cancelled (a client's 4xx is not downtime; a 429 only when configured)."""
    period_minutes = (end - start).total_seconds() / 60
    if len(snapshots):
        up = float(snapshots["up"].astype(bool).mean())
        return number(up, source="engine readings", readings=len(snapshots),
                      downtime_minutes=round((1 - up) * period_minutes, 1))
    frame = hours.frame
    valid = float(frame["requests"].sum() - frame["cancelled"].sum())
    bad = float(bad_events(frame, throttled_is_failure).sum())
    return ratio(valid - bad, valid, "no readings and no requests",
                 source="request success", failed=int(bad), requests=int(valid))


def fleet_hours(hours: Hours) -> tuple[pd.DataFrame, np.ndarray]:
    """The fleet per hour: requests and failures summed over pods, and the TTFT bins."""
    groups = hours.frame.groupby("hour", sort=True)
    out = groups[["requests", "failed"]].sum().reset_index()
    summed = np.zeros((len(out), hours.ttft.shape[1]))
    np.add.at(summed, groups.ngroup().to_numpy(), hours.ttft)
    return out, summed


def scalability_index(hours: Hours, slo_seconds: float) -> Value:
    """peak hourly load served within SLO / median hourly load (seed KPI 9). An hour is
    within SLO when ≥ 95 % of its first tokens came within slo_seconds (the threshold is
    taken at the nearest roll-up bound below it) and ≤ 1 % of requests failed."""
    fleet, bins = fleet_hours(hours)
    busy = (fleet["requests"] > 0).to_numpy(dtype=bool)
    fleet, bins = fleet[busy], bins[busy]
    if fleet.empty:
        return none("no requests in the period")
    edge = int(np.searchsorted(LATENCY_BOUNDS, slo_seconds, side="right"))
    timed = bins.sum(axis=1)
    fast = bins[:, :edge].sum(axis=1)
    good = ((fast >= WITHIN_SLO_SHARE * timed) & (timed > 0)
            & (fleet["failed"].to_numpy() <= MAX_FAILED_SHARE * fleet["requests"].to_numpy()))
    baseline = float(fleet["requests"].median())
    if not good.any():
        return none("no hour met the SLO", band="red", baseline_per_hour=baseline)
    peak = float(fleet["requests"].to_numpy()[good].max())
    return number(peak / baseline, peak_per_hour=peak, baseline_per_hour=baseline,
                  hours_within_slo=int(good.sum()), hours=len(fleet))


def response_time(hours: Hours) -> Value:
    """p95 time to first token over the period (p95 end-to-end beside)."""
    p95 = quantile(hours.ttft.sum(axis=0), 0.95)
    if p95 is None:
        return none("no timed requests in the period")
    e2e = quantile(hours.e2e.sum(axis=0), 0.95)
    return number(p95, e2e_p95_seconds=round(e2e, 4) if e2e is not None else None,
                  requests=int(hours.frame["requests"].sum()))
