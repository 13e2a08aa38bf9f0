"""The store's period cache: a closed period read from it is what computing gives, an import
or a late ledger row makes it stale, a running period is never kept (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from app import data
from collectors import rollup
from collectors.demo_company.load import load
from collectors.store import Store
from collectors.tables import KpiPeriodCache, LedgerRow, LedgerUsage
from kpi_mapping import cost_report, period_cache
from kpi_mapping.config import KpiConfig
from kpi_mapping.periods import parse_period, period_containing
from kpi_mapping.report import read
from llmkpi.demo_data import make
from specs.slo import slo

pytestmark = pytest.mark.integration
OCTOBER = parse_period("month", "2026-10")
SLOS = (slo("availability", "availability", 0.999), slo("ttft", "ttft", 0.99, 0.5))


def entries(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(KpiPeriodCache)).scalar() or 0)


def rows(report: object) -> list[dict[str, object]]:
    return [asdict(r) for r in report.rows]  # type: ignore[attr-defined]


def same_view(kept: data.CostView | None, computed: data.CostView | None) -> None:
    assert kept is not None and computed is not None
    for name, value in vars(computed).items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(getattr(kept, name).reset_index(drop=True),
                                          value.reset_index(drop=True), check_dtype=False)
        else:
            assert getattr(kept, name) == value, name


def test_cached_periods_answer_what_computing_does_until_the_data_changes(
        store: Store, tmp_path: Path) -> None:
    load(store, make(tmp_path / "company", 2, 5, date(2026, 10, 1), base_per_day=30,
                     raw_days=None), say=lambda _line: None)
    config = KpiConfig()
    computed = read(store, OCTOBER, config, keep=False)
    assert entries(store) == 0  # keep=False writes nothing
    first = read(store, OCTOBER, config)
    kept = entries(store)
    assert kept == len(first.periods)  # every period of the history has ended
    assert rows(read(store, OCTOBER, config)) == rows(first) == rows(computed)

    # another KPI config is another entry, not the same answer
    other = KpiConfig(correlation_periods=4)
    assert len(period_cache.lookup(store, [OCTOBER], other)) == 0

    # cost and serving health of a closed period, with no filter, from the cache
    points = data.cost_points(store, [OCTOBER])
    assert data.cost_points(store, [OCTOBER]) == points and points[0] is not None
    health = data.serving(store, OCTOBER, data.Filters(), SLOS)
    again = data.serving(store, OCTOBER, data.Filters(), SLOS)
    assert (again.requests, again.failed, again.ttft_p95, again.itl_p95) == (
        health.requests, health.failed, health.ttft_p95, health.itl_p95)
    assert [(s.slo.name, s.bad, s.budget_remaining, s.exhausted_on) for s in again.slos] == \
        [(s.slo.name, s.bad, s.budget_remaining, s.exhausted_on) for s in health.slos]
    assert again.daily.equals(health.daily)

    # a closed period's allocation, kept summed over hours, shows what allocating shows
    fresh_priced = data.Priced(OCTOBER, *cost_report.compute(store, OCTOBER))
    assert data.priced(store, OCTOBER) is not None  # computes and keeps
    kept_priced = data.priced(store, OCTOBER)
    assert kept_priced is not None
    assert len(kept_priced.allocation.usage) < len(fresh_priced.allocation.usage) / 10
    model = str(fresh_priced.allocation.usage["model"].iloc[0])
    for filters in (data.Filters(), data.Filters(tenants=("tenant-0000", "tenant-0002")),
                    data.Filters(models=(model,))):
        for basis in ("fully_loaded", "busy_time"):
            same_view(data.cost(kept_priced, filters, basis),
                      data.cost(fresh_priced, filters, basis))

    # a late request for October: the roll-up of October changes, its entry is stale
    late = {"source": "late", "request_id": "late-1", "tenant": "tenant-0000",
            "model": "m", "feature": "chat", "endpoint": "chat", "pod": "vllm-0", "gpu": "",
            "arrival": datetime(2026, 10, 20, 12, tzinfo=UTC),
            "finish": datetime(2026, 10, 20, 12, 0, 1, tzinfo=UTC), "outcome": "ok",
            "http_status": 200, "e2e_latency": 1.0, "time_to_first_token": 0.2,
            "prompt_tokens": 10, "output_tokens": 5}
    with store.session() as session:
        store.insert_ignore(session, LedgerRow, [late])
        session.commit()
    rollup.refresh(store)
    assert OCTOBER.start not in period_cache.lookup(store, [OCTOBER], config)
    repriced = data.priced(store, OCTOBER)
    assert repriced is not None
    assert repriced.allocation.requests == fresh_priced.allocation.requests + 1
    fresh = read(store, OCTOBER, config)
    assert fresh.row(13).cto.detail["requests"] == first.row(13).cto.detail["requests"] + 1


def test_a_running_period_is_never_kept(store: Store) -> None:
    now = period_containing("month", datetime.now(UTC).date())
    assert not period_cache.closed(now)
    assert period_cache.closed(now.previous())
    assert period_cache.keep(store, {now: {}}, KpiConfig()) == 0
    assert entries(store) == 0
    assert period_cache.closed(now, now.end + timedelta(seconds=1))


def test_latest_data_is_the_newest_request_not_the_end_of_its_hour(store: Store) -> None:
    from kpi_mapping.data import latest_data

    hour = datetime(2026, 11, 30, 15, tzinfo=UTC)
    with store.session() as session:
        store.insert_ignore(session, LedgerUsage, [{
            "pod": "p", "hour": hour, "tenant": "t", "feature": "f", "model": "m",
            "requests": 1, "ok": 1, "failed": 0, "throttled": 0, "cancelled": 0,
            "input_tokens": 1, "cached_tokens": 0, "output_tokens": 1, "prefill_us": 1,
            "decode_us": 1, "ttft_counts": "{}", "itl_counts": "{}"}])
        session.commit()
    # a roll-up with no raw rows behind it: its hour's last second
    assert latest_data(store) == hour + timedelta(minutes=59, seconds=59)
    with store.session() as session:
        store.insert_ignore(session, LedgerRow, [{
            "source": "s", "request_id": "r", "tenant": "t", "model": "m", "feature": "f",
            "endpoint": "chat", "pod": "p", "gpu": "", "arrival": hour + timedelta(minutes=31),
            "finish": hour + timedelta(minutes=32), "outcome": "ok", "http_status": 200,
            "e2e_latency": 60.0}])
        session.commit()
    # raw rows in that hour: the newest request, not a time still to come
    assert latest_data(store) == hour + timedelta(minutes=31)
