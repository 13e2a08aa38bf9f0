"""Everything the 19 mappings read, loaded from the store once for a span of periods."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, select

from collectors import tables as t
from collectors import usage
from collectors.store import Store
from kpi_mapping.data import utc
from kpi_mapping.formulas.serving import Hours, no_hours

# the import that fills each input, named when the input is missing (docs/imports.md)
SOURCES = {
    "finance": (t.FinanceMonth, "llmkpi import finance"),
    "people": (t.Person, "llmkpi import people"),
    "deployments": (t.Deployment, "llmkpi import deployments (or git --tags)"),
    "git": (t.Commit, "llmkpi import git"),
    "incidents": (t.Incident, "llmkpi import incidents"),
    "work-items": (t.WorkItem, "llmkpi import work-items"),
    "releases": (t.Release, "llmkpi import releases"),
    "coverage": (t.CoverageReport, "llmkpi import coverage"),
    "mixpanel": (t.ProductEventRow, "llmkpi import mixpanel"),
    "integrations": (t.IntegrationAttempt, "llmkpi import integrations"),
    "gpus": (t.GpuAllocation, "llmkpi import gpus"),
    "ledger": (t.LedgerRow, "llmkpi import ledger FILE, or the sidecar's --ledger"),
    "engine snapshots": (t.EngineSnapshotRow, "the sidecar's --ledger, or import prometheus"),
    "tenant-revenue": (t.TenantRevenue, "llmkpi import tenant-revenue"),
}
EVENTS = ("feature_deployed", "feature_engaged", "nps_submitted", "integration_attempted")
UTC_COLUMNS = ("authored", "committed", "started", "finished", "detected", "acknowledged",
               "contained", "resolved", "created", "taken", "attempted", "happened", "hour",
               "valid_from", "valid_to")


def _table(model: type) -> Table:
    return model.__table__  # type: ignore[attr-defined,no-any-return]


def _frame(store: Store, query: object) -> pd.DataFrame:
    with store.engine.connect() as conn:
        frame: pd.DataFrame = pd.read_sql(query, conn)  # type: ignore[call-overload]
    return utc(frame, *(name for name in UTC_COLUMNS if name in frame))


@dataclass(frozen=True)
class Inputs:
    present: frozenset[str]
    finance: pd.DataFrame
    people: pd.DataFrame
    deployments: pd.DataFrame
    commits: pd.DataFrame
    incidents: pd.DataFrame
    work_items: pd.DataFrame
    releases: pd.DataFrame
    coverage: pd.DataFrame
    events: pd.DataFrame
    integrations: pd.DataFrame
    gpus: pd.DataFrame
    snapshots: pd.DataFrame
    hours: Hours

    def lacks(self, *sources: str) -> str | None:
        """The first of these inputs the store holds no row of, as a hint to fill it."""
        for source in sources:
            if source not in self.present:
                return f"{source} ({SOURCES[source][1]})"
        return None


def _events(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    table = _table(t.ProductEventRow)
    # a feature shipped long before the window still counts as shipped: those events are few
    shipped = (table.c.event == "feature_deployed") & (table.c.happened < end)
    in_window = table.c.event.in_(EVENTS) & (table.c.happened >= start) & (
        table.c.happened < end)
    frame = _frame(store, select(table.c.event, table.c.distinct_id, table.c.happened,
                                 table.c.properties).where(shipped | in_window))
    props = [json.loads(text) for text in frame["properties"]]
    for name in ("feature", "score", "success", "tenant", "survey"):
        frame[name] = [p.get(name) for p in props]
    return frame.drop(columns=["properties"])


def _hours(store: Store, start: datetime, end: datetime) -> Hours:
    table = _table(t.LedgerHour)
    frame = _frame(store, select(table).where(table.c.hour >= start, table.c.hour < end)
                   .order_by(table.c.pod, table.c.hour))
    if frame.empty:
        return no_hours()

    def bins(column: str) -> np.ndarray:
        return usage.decode(frame.pop(column), len(usage.LATENCY_BOUNDS) + 1).astype("float64")

    ttft, e2e = bins("ttft_counts"), bins("e2e_counts")
    return Hours(frame, ttft, e2e)


def load(store: Store, start: datetime, end: datetime) -> Inputs:
    """Small tables whole; events, engine readings and the ledger roll-up for [start, end)."""
    present = set()
    with store.engine.connect() as conn:
        for name, (model, _) in SOURCES.items():
            if conn.execute(select(func.count()).select_from(
                    select(_table(model)).limit(1).subquery())).scalar():
                present.add(name)
    snapshots = _table(t.EngineSnapshotRow)
    attempts = _table(t.IntegrationAttempt)

    def whole(model: type) -> pd.DataFrame:
        return _frame(store, select(_table(model)))

    return Inputs(
        present=frozenset(present), finance=whole(t.FinanceMonth), people=whole(t.Person),
        deployments=whole(t.Deployment), commits=whole(t.Commit),
        incidents=whole(t.Incident), work_items=whole(t.WorkItem),
        releases=whole(t.Release), coverage=whole(t.CoverageReport),
        events=_events(store, start, end),
        integrations=_frame(store, select(attempts).where(
            attempts.c.attempted >= start, attempts.c.attempted < end)),
        gpus=whole(t.GpuAllocation),
        snapshots=_frame(store, select(snapshots.c.taken, snapshots.c.pod, snapshots.c.up,
                                       snapshots.c.kv_cache_usage).where(
            snapshots.c.taken >= start, snapshots.c.taken < end)),
        hours=_hours(store, start, end))
