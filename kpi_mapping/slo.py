"""SLOs judged on the ledger's hourly usage roll-up by the one SLI definition of specs/slo.py:
the same events and bad events the generated recording rules count live (alerts/slo.py).

Requests SLIs count requests by outcome. Latency SLIs count observations in the live
histograms' own bins (collectors/usage.py): TTFT one per request with a first token, ITL one
per token gap — the ledger keeps each request's gaps per bin, so the ledger, the live
histogram and the SLO judge the same gaps. A threshold is a bucket bound (the SLO config
checks it), so good and bad are exact.

An SLO is judged over its own window (its `period`, 30 days by default) ending at the end
of the period shown, as SRE tools show it: the error budget remaining is clamped at 0, and
an overspent budget says when it ran out and how many times over it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from collectors import usage
from kpi_mapping.formulas.serving import histogram_quantile
from specs.slo import Slo

BOUNDS = {"ttft": usage.TTFT_BOUNDS, "itl": usage.ITL_BOUNDS}


@dataclass(frozen=True)
class Usage:
    """Usage rows of the roll-up with their TTFT and ITL bins decoded (one row each)."""

    frame: pd.DataFrame
    ttft: np.ndarray
    itl: np.ndarray

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Usage:
        frame = frame.reset_index(drop=True)
        return cls(frame, usage.decode(frame["ttft_counts"], len(usage.TTFT_BOUNDS) + 1),
                   usage.decode(frame["itl_counts"], len(usage.ITL_BOUNDS) + 1))

    def where(self, mask: np.ndarray) -> Usage:
        return Usage(self.frame[mask].reset_index(drop=True), self.ttft[mask], self.itl[mask])

    def between(self, start: datetime, end: datetime) -> Usage:
        hour = self.frame["hour"]
        return self.where(((hour >= pd.Timestamp(start)) & (hour < pd.Timestamp(end)))
                          .to_numpy(dtype=bool))

    def total(self, name: str) -> int:
        return int(self.frame[name].sum())

    def p95(self, sli: str) -> float | None:
        bins = self.ttft if sli == "ttft" else self.itl
        return histogram_quantile(bins.sum(axis=0), BOUNDS[sli], 0.95)


@dataclass(frozen=True)
class SloStatus:
    slo: Slo
    events: float
    bad: float
    achieved: float | None  # good / events
    budget_remaining: float | None  # 1 − spent, clamped at 0 (what SRE tools show)
    spent: float | None  # bad share / allowed bad share: 1 = all of it, 3.2 = 3.2× over
    exhausted_on: datetime | None  # the hour the window's bad events passed its budget
    window_start: datetime | None = None
    window_end: datetime | None = None

    @property
    def overspent(self) -> bool:
        return self.spent is not None and self.spent > 1.0


def _bad_per_row(rows: Usage, slo: Slo, throttled_is_failure: bool
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(events, bad events) per usage row."""
    sli, frame = slo.spec, rows.frame
    if sli.kind == "requests":
        events = frame["requests"].to_numpy(dtype="int64")
        if "cancelled" in sli.not_events:
            events = events - frame["cancelled"].to_numpy(dtype="int64")
        bad = frame["failed"].to_numpy(dtype="int64")
        if throttled_is_failure and sli.throttled_status is not None:
            bad = bad + frame["throttled"].to_numpy(dtype="int64")
        return events, bad
    bins = rows.ttft if slo.sli == "ttft" else rows.itl
    bounds = BOUNDS[slo.sli]
    threshold = slo.default.threshold_seconds or 0.0
    good_bins = int(np.searchsorted(np.asarray(bounds), threshold, side="right"))
    return bins.sum(axis=1), bins[:, good_bins:].sum(axis=1)


def events(rows: Usage, slo: Slo, throttled_is_failure: bool = False) -> tuple[float, float]:
    """(events, bad events) of the SLO over usage rows."""
    total, bad = _bad_per_row(rows, slo, throttled_is_failure)
    return float(total.sum()), float(bad.sum())


def status(rows: Usage, slo: Slo, throttled_is_failure: bool = False,
           end: datetime | None = None) -> SloStatus:
    """The SLO over its window ending at `end` (every row given, when no end)."""
    start = None
    if end is not None:
        start = end - timedelta(seconds=slo.default.period_seconds)
        rows = rows.between(start, end)
    per_row, bad_row = _bad_per_row(rows, slo, throttled_is_failure)
    total, bad = float(per_row.sum()), float(bad_row.sum())
    budget = slo.default.error_budget
    if not total:
        return SloStatus(slo, 0.0, 0.0, None, None, None, None, start, end)
    spent = (bad / total) / budget if budget > 0 else None
    exhausted = None
    if spent is not None and spent > 1.0:
        hourly = pd.Series(bad_row, index=rows.frame["hour"]).groupby(level=0).sum()
        over = np.flatnonzero(hourly.cumsum().to_numpy() > budget * total)
        exhausted = pd.Timestamp(hourly.index[over[0]]).to_pydatetime()
    return SloStatus(slo, total, bad, 1.0 - bad / total,
                     max(0.0, 1.0 - spent) if spent is not None else None, spent, exhausted,
                     start, end)
