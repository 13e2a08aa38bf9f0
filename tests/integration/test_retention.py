"""Raw ledger retention (collectors/retention.py, `llmkpi db retention`) on SQLite and on
PostgreSQL's day partitions: old raw rows go, the hourly roll-ups stay, and every report for
a period whose raw rows are gone answers exactly as before; nothing waiting for the roll-up
is dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from collectors import retention, rollup
from collectors.demo_company.load import load
from collectors.store import Store
from collectors.tables import LedgerHour, LedgerRow
from llmkpi.demo_data import make
from tests.integration.store_fixtures import POSTGRES

pytestmark = pytest.mark.integration
TABLE = LedgerRow.__table__  # type: ignore[attr-defined]
DAY0 = datetime(2026, 10, 1, tzinfo=UTC)


def row(name: str, day: int, hour: int = 10) -> dict[str, Any]:
    arrival = DAY0 + timedelta(days=day, hours=hour)
    return {"source": "sidecar", "request_id": name, "tenant": "t", "model": "m",
            "feature": "chat", "endpoint": "chat", "pod": "p", "gpu": "", "arrival": arrival,
            "finish": arrival + timedelta(seconds=1), "outcome": "ok", "http_status": 200,
            "time_to_first_token": 0.2, "e2e_latency": 1.0, "prompt_tokens": 10,
            "output_tokens": 5}


def raw_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(TABLE)).scalar() or 0)


def rolled_up(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(LedgerHour.requests), 0))
                                ).scalar() or 0)


def test_old_days_go_the_roll_up_stays_and_late_rows_still_count(store: Store) -> None:
    """Five days, two requests a day (Oct 1-5); on Oct 6 with 2 days kept, Oct 1-3 go."""
    first = retention.apply(store, keep_days=2, today=date(2026, 10, 1))  # the daily run
    assert first.rows_removed == 0
    with store.engine.begin() as conn:
        conn.execute(TABLE.insert(), [row(f"d{d}-{n}", d, 9 + n) for d in range(5)
                                      for n in range(2)])
    done = retention.apply(store, keep_days=2, today=date(2026, 10, 6))
    assert done.cutoff == date(2026, 10, 4)
    assert done.rows_removed == 6  # 3 days x 2 requests
    assert raw_rows(store) == 4
    assert rolled_up(store) == 10  # every request still in the hourly roll-up
    postgres = store.engine.dialect.name == "postgresql"
    if postgres:
        assert done.days_dropped == [date(2026, 10, d) for d in (1, 2, 3)]
        with store.engine.connect() as conn:
            days = sorted(retention.partitions(conn))
        # Oct 4 and 5 (rows), and Oct 6 to 13: today and the 7 days ahead
        assert days == [date(2026, 10, d) for d in range(4, 14)]
        assert done.partitions_until == date(2026, 10, 13)
    # a request that arrives late for a dropped day (Oct 2) is added to its kept hour
    with store.engine.begin() as conn:
        conn.execute(TABLE.insert(), [row("late", 1, 9)])
    rollup.refresh(store)
    assert rolled_up(store) == 11
    with store.engine.connect() as conn:
        (hour,) = conn.execute(select(LedgerHour.requests).where(
            LedgerHour.hour == DAY0 + timedelta(days=1, hours=9))).all()
    assert hour.requests == 2  # "d1-0" (raw row gone) and "late"
    # a row for a day with no partition yet goes to the default one, then moves into its
    # own partition when the day is made
    with store.engine.begin() as conn:
        conn.execute(TABLE.insert(), [row("far", 30)])
    again = retention.apply(store, keep_days=2, today=date(2026, 10, 29))
    if postgres:
        with store.engine.connect() as conn:
            assert date(2026, 10, 31) in retention.partitions(conn)
            in_default = conn.execute(text(
                f"SELECT count(*) FROM {retention.DEFAULT_PARTITION}")).scalar()
        assert in_default == 0
    assert again.cutoff == date(2026, 10, 27)
    assert raw_rows(store) == 1  # "far" only
    assert rolled_up(store) == 12


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_day_with_a_row_still_being_written_is_held_until_the_next_run(
        store: Store) -> None:
    retention.apply(store, keep_days=2, today=date(2026, 10, 1))  # makes Oct 1's partition
    with store.engine.begin() as conn:
        conn.execute(TABLE.insert(), [row("old", 0)])
    rollup.refresh(store)
    slow = store.engine.connect()
    slow_txn = slow.begin()
    slow.execute(TABLE.insert(), [row("slow", 0, 11)])  # Oct 1, not committed yet
    committer = threading.Timer(1.0, slow_txn.commit)
    committer.start()
    try:
        # the drop waits for the writer's lock, then finds its row not rolled up: held
        done = retention.apply(store, keep_days=2, today=date(2026, 10, 6))
    finally:
        committer.join()
        slow.close()
    assert done.days_held == [date(2026, 10, 1)]
    assert done.days_dropped == [date(2026, 10, 2), date(2026, 10, 3)]  # empty ones go
    assert raw_rows(store) == 2
    later = retention.apply(store, keep_days=2, today=date(2026, 10, 6))
    assert later.days_dropped == [date(2026, 10, 1)] and later.rows_removed == 2
    assert raw_rows(store) == 0
    assert rolled_up(store) == 2  # "slow" summed before its day went


def test_keep_days_below_one_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        retention.apply(store, keep_days=0)


def report(kind: str, at: str, database: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "llmkpi", kind, "report", "--at", at,
                           "--format", "json", "--database", database],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_reports_for_periods_whose_raw_rows_are_gone_answer_as_before(
        store: Store, tmp_path: Path) -> None:
    """A demo company (August to October 2026, every request raw), then `llmkpi db
    retention --keep-days 20` on 2026-11-05: September's and half of October's raw rows
    go. The KPI report for September and the cost report for October are unchanged."""
    load(store, make(tmp_path / "company", 3, 5, date(2026, 10, 1), base_per_day=40,
                     raw_days=None), say=lambda _line: None)
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            path = conn.exec_driver_sql("SHOW search_path").scalar()
        database = f"{POSTGRES}?options=-csearch_path%3D{path}"
    else:
        database = str(store.engine.url.database)
    before = {kind: report(kind, at, database) for kind, at in
              (("kpi", "2026-09"), ("cost", "2026-10"))}
    rows = raw_rows(store)
    done = subprocess.run([sys.executable, "-m", "llmkpi", "db", "retention", "--keep-days",
                           "20", "--today", "2026-11-05", "--database", database],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "raw rows from before 2026-10-16 removed" in done.stdout, done.stdout
    assert 0 < raw_rows(store) < rows
    with store.engine.connect() as conn:
        oldest = conn.execute(select(func.min(TABLE.c.arrival))).scalar()
    assert oldest is not None and oldest.date() >= date(2026, 10, 16)
    after = {kind: report(kind, at, database) for kind, at in
             (("kpi", "2026-09"), ("cost", "2026-10"))}
    for kind, doc in before.items():
        doc.pop("generated", None)
        after[kind].pop("generated", None)
    assert after == before
