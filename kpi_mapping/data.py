"""Store tables as DataFrames with UTC times (SQLite hands times back without a zone)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import func
from sqlmodel import col, select

from collectors.store import Store
from collectors.tables import (
    FinanceMonth,
    GpuAllocation,
    LedgerHour,
    LedgerRow,
    LedgerUsage,
    TenantRevenue,
)
from kpi_mapping.periods import period_containing


def utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The named columns as timezone-aware UTC times (SQLite returns them without a zone)."""
    for name in columns:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def usage(store: Store, start: datetime, end: datetime, tenants: Sequence[str] = (),
          models: Sequence[str] = (), bins: bool = True) -> pd.DataFrame:
    """The roll-up's usage rows (pod, hour, tenant, feature, model) of [start, end),
    narrowed to tenants and models; without `bins`, no latency bins (cost needs none)."""
    table = LedgerUsage.__table__  # type: ignore[attr-defined]
    columns = [c for c in table.c if bins or not c.name.endswith("_counts")]
    query = select(*columns).where(table.c.hour >= start, table.c.hour < end)
    if tenants:
        query = query.where(table.c.tenant.in_(tenants))
    if models:
        query = query.where(table.c.model.in_(models))
    with store.engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    return utc(frame, "hour")


def pod_hours(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """The roll-up's pod-hours (busy time, and what sets the pod's role) of [start, end)."""
    table = LedgerHour.__table__  # type: ignore[attr-defined]
    names = ("pod", "hour", "busy_seconds", "requests", "prefills", "role")
    query = select(*(table.c[name] for name in names)).where(
        table.c.hour >= start, table.c.hour < end)
    with store.engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    return utc(frame, "hour")


def gpus(store: Store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        frame = pd.read_sql(select(GpuAllocation), conn)
    return utc(frame, "valid_from", "valid_to")


def tenant_revenue(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """Each tenant's revenue of the months overlapping [start, end), each month prorated by
    the share of its days inside (a week gets 7/30 of a 30-day month): `share` says how much
    of the month was taken (1.0 for a whole month)."""
    first = start.date().replace(day=1)
    query = select(TenantRevenue).where(col(TenantRevenue.month) >= first,
                                        col(TenantRevenue.month) < end.date())
    with store.engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    if frame.empty:
        return frame.assign(share=pd.Series(dtype="float64"))
    months = pd.to_datetime(frame["month"]).to_numpy(dtype="datetime64[s]")  # UTC, naive
    following = (pd.to_datetime(frame["month"]) + pd.offsets.MonthBegin(1)).to_numpy(
        dtype="datetime64[s]")
    naive = [np.datetime64(pd.Timestamp(t).tz_convert(UTC).tz_localize(None), "s")
             for t in (start, end)]
    inside = np.minimum(following, naive[1]) - np.maximum(months, naive[0])
    frame["share"] = inside / (following - months)
    frame["revenue"] = frame["revenue"].astype("float64") * frame["share"]
    return frame[frame["share"] > 0].reset_index(drop=True)


def latest_data(store: Store) -> datetime | None:
    """The newest request: in the ledger, else the end of the roll-up's newest hour (raw
    rows may have aged out); else the end of the newest finance month."""
    with store.engine.connect() as conn:
        arrival = conn.execute(select(func.max(col(LedgerRow.arrival)))).scalar()
        hour = conn.execute(select(func.max(col(LedgerUsage.hour)))).scalar()
        month = conn.execute(select(func.max(col(FinanceMonth.month)))).scalar()
    if arrival is not None and (hour is None or _utc(arrival) >= _utc(hour)):
        return _utc(arrival)  # raw rows reach the roll-up's newest hour: they say when
    if hour is not None:
        return _utc(hour) + timedelta(hours=1) - timedelta(seconds=1)
    if month is not None:
        return period_containing("month", month).end - timedelta(seconds=1)
    return None


def _utc(value: object) -> datetime:
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    return (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp).to_pydatetime()


def choices(store: Store) -> tuple[list[str], list[str]]:
    """Every tenant and model the roll-up has seen (raw rows age out), for the filters."""
    with store.engine.connect() as conn:
        tenants = conn.execute(select(col(LedgerUsage.tenant)).distinct()).scalars().all()
        models = conn.execute(select(col(LedgerUsage.model)).distinct()).scalars().all()
    return sorted(map(str, tenants)), sorted(map(str, models))
