"""Serving health of a period from the ledger's usage roll-up: requests, server-side
failures, TTFT p95 and per-gap ITL p95 (overall and per day, on the live histograms' bins),
and each SLO over its own window — what the page's serving section shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from collectors.store import Store
from kpi_mapping import data
from kpi_mapping import slo as slo_eval
from kpi_mapping.periods import Period
from specs.slo import Slo


def window_start(period: Period, end: datetime, slos: Sequence[Slo]) -> datetime:
    """Where the rows health needs begin: the period's start or the longest SLO window."""
    longest = max((s.default.period_seconds for s in slos), default=0.0)
    return min(period.start, end - timedelta(seconds=longest))


def requests(store: Store, start: datetime, end: datetime, tenants: Sequence[str] = (),
             models: Sequence[str] = ()) -> slo_eval.Usage:
    """The usage rows of [start, end), narrowed to tenants and models, bins decoded."""
    return slo_eval.Usage.of(data.usage(store, start, end, tenants, models))


@dataclass(frozen=True)
class Health:
    requests: int
    failed: int  # server-side failures (and 429s where configured)
    ttft_p95: float | None  # per request, on the TTFT histogram's bins
    itl_p95: float | None  # per token gap, on the ITL histogram's bins
    daily: pd.DataFrame  # day, ttft_p95, itl_p95, requests
    slos: list[slo_eval.SloStatus]


def health(rows: slo_eval.Usage, period: Period, slos: Sequence[Slo],
           throttled_is_failure: bool = False, end: datetime | None = None) -> Health:
    """The period's figures from rows inside it; each SLO over its window ending at `end`
    (the period's end, or the as-of time of a running period)."""
    end = end or period.end
    mine = rows.between(period.start, end)
    frame = mine.frame
    daily = pd.DataFrame(columns=["day", "ttft_p95", "itl_p95", "requests"])
    if not frame.empty:
        day = frame["hour"].dt.floor("D")
        out = []
        for value in sorted(day.unique()):
            that = mine.where((day == value).to_numpy(dtype=bool))
            out.append({"day": value, "ttft_p95": that.p95("ttft"),
                        "itl_p95": that.p95("itl"), "requests": that.total("requests")})
        daily = pd.DataFrame(out)
    failed = mine.total("failed") + (mine.total("throttled") if throttled_is_failure else 0) \
        if not frame.empty else 0
    return Health(
        requests=mine.total("requests") if not frame.empty else 0, failed=failed,
        ttft_p95=mine.p95("ttft"), itl_p95=mine.p95("itl"), daily=daily,
        slos=[slo_eval.status(rows, s, throttled_is_failure, end) for s in slos])
