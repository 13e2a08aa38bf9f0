"""Store tables as DataFrames with UTC times (SQLite hands times back without a zone)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlmodel import col, select

from collectors.store import Store
from collectors.tables import GpuAllocation, LedgerRow, TenantRevenue
from kpi_mapping.cost import LEDGER_COLUMNS


def utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """The named columns as timezone-aware UTC times (SQLite returns them without a zone)."""
    for name in columns:
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def ledger(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    query = select(*(getattr(LedgerRow, c) for c in LEDGER_COLUMNS)).where(
        col(LedgerRow.arrival) >= start, col(LedgerRow.arrival) < end)
    with store.engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    return utc(frame, "arrival", "finish")


def gpus(store: Store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        frame = pd.read_sql(select(GpuAllocation), conn)
    return utc(frame, "valid_from", "valid_to")


def tenant_revenue(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    query = select(TenantRevenue).where(col(TenantRevenue.month) >= start.date(),
                                        col(TenantRevenue.month) < end.date())
    with store.engine.connect() as conn:
        return pd.read_sql(query, conn)
