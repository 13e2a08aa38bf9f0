"""Serving health of a period from the ledger: requests, server-side failures, TTFT and ITL
p95 (overall and per day), and each SLO's status — what the page's serving section shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlmodel import col, select

from collectors import rollup
from collectors.store import Store
from collectors.tables import LedgerRow
from kpi_mapping import slo as slo_eval
from kpi_mapping.data import utc
from kpi_mapping.periods import Period
from specs.slo import Slo

COLUMNS = ("arrival", "tenant", "model", *slo_eval.COLUMNS)


def requests(store: Store, period: Period, tenants: Sequence[str] = (),
             models: Sequence[str] = ()) -> pd.DataFrame:
    """The period's ledger rows (the serving columns), narrowed to tenants and models."""
    query = select(*(getattr(LedgerRow, c) for c in COLUMNS)).where(
        col(LedgerRow.arrival) >= period.start, col(LedgerRow.arrival) < period.end)
    if tenants:
        query = query.where(col(LedgerRow.tenant).in_(tenants))
    if models:
        query = query.where(col(LedgerRow.model).in_(models))
    with store.engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    return utc(frame, "arrival")


@dataclass(frozen=True)
class Health:
    requests: int
    failed: int  # server-side failures (and 429s where configured)
    ttft_p95: float | None
    itl_p95: float | None  # of each request's mean gap
    daily: pd.DataFrame  # day, ttft_p95, itl_p95, requests
    slos: list[slo_eval.SloStatus]


def failed(frame: pd.DataFrame, throttled_is_failure: bool) -> int:
    return int(rollup.server_failures(frame["outcome"].to_numpy(dtype=object),
                                      frame["http_status"].to_numpy(dtype=object),
                                      throttled_is_failure).sum())


def health(frame: pd.DataFrame, slos: Sequence[Slo],
           throttled_is_failure: bool = False) -> Health:
    daily = pd.DataFrame(columns=["day", "ttft_p95", "itl_p95", "requests"])
    if not frame.empty:
        days = frame.assign(day=frame["arrival"].dt.floor("D")).groupby("day")
        daily = pd.DataFrame({
            "ttft_p95": days["time_to_first_token"].quantile(0.95),
            "itl_p95": days["mean_inter_token_latency"].quantile(0.95),
            "requests": days.size()}).reset_index()
    return Health(
        requests=len(frame), failed=failed(frame, throttled_is_failure),
        ttft_p95=slo_eval.p95(frame["time_to_first_token"]),
        itl_p95=slo_eval.p95(frame["mean_inter_token_latency"]), daily=daily,
        slos=[slo_eval.status(frame, s, throttled_is_failure) for s in slos])
