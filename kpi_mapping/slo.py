"""SLOs judged on ledger rows by the one SLI definition of specs/slo.py — the same events
and bad events the generated recording rules count live (alerts/slo.py).

Requests SLIs count ledger rows by outcome. Latency SLIs: TTFT judges each request's first
token; ITL judges token gaps, and since the ledger keeps a request's mean gap rather than
every gap, each request's gaps are judged by its mean (Prometheus' per-gap histogram is
exact; the two agree whenever a request's gaps are alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from specs.slo import Slo

COLUMNS = ("outcome", "http_status", "time_to_first_token", "mean_inter_token_latency",
           "output_tokens")


@dataclass(frozen=True)
class SloStatus:
    slo: Slo
    events: float
    bad: float
    achieved: float | None  # good / events
    budget_remaining: float | None  # 1 − bad share / allowed bad share (below 0: overspent)


def bad_requests(frame: pd.DataFrame, slo: Slo, throttled_is_failure: bool) -> pd.Series:
    """Which ledger rows are bad events of a requests SLI."""
    sli = slo.spec
    bad = frame["outcome"].isin(sli.bad_outcomes)
    if throttled_is_failure and sli.throttled_status is not None:
        bad |= frame["http_status"] == sli.throttled_status
    return bad & ~frame["outcome"].isin(sli.not_events)


def events(frame: pd.DataFrame, slo: Slo, throttled_is_failure: bool = False
           ) -> tuple[float, float]:
    """(events, bad events) of the SLO over ledger rows."""
    sli, threshold = slo.spec, slo.default.threshold_seconds or 0.0
    if sli.kind == "requests":
        valid = ~frame["outcome"].isin(sli.not_events)
        return float(valid.sum()), float(bad_requests(frame, slo, throttled_is_failure).sum())
    if slo.sli == "ttft":
        ttft = frame["time_to_first_token"].dropna().astype("float64")
        return float(len(ttft)), float((ttft > threshold).sum())
    rows = frame.dropna(subset=["mean_inter_token_latency", "output_tokens"])
    gaps = (rows["output_tokens"].astype("float64") - 1).clip(lower=0)
    slow = rows["mean_inter_token_latency"].astype("float64") > threshold
    return float(gaps.sum()), float(gaps[slow].sum())


def status(frame: pd.DataFrame, slo: Slo, throttled_is_failure: bool = False) -> SloStatus:
    """Share achieved and error budget remaining over the rows (below 0: overspent)."""
    total, bad = events(frame, slo, throttled_is_failure)
    if not total:
        return SloStatus(slo, 0.0, 0.0, None, None)
    budget = slo.default.error_budget
    return SloStatus(slo, total, bad, 1.0 - bad / total,
                     1.0 - (bad / total) / budget if budget > 0 else None)


def p95(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(np.quantile(values.to_numpy(dtype="float64"), 0.95)) if len(values) else None
