"""The roll-up under concurrent writers on PostgreSQL (issue 19): ledger ids are handed out
when a row is inserted, not when its transaction commits, so a row can become visible after
a higher id was rolled up. The roll-up must count it all the same."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text

from collectors import retention, rollup
from collectors.store import Store
from collectors.tables import LedgerHour, LedgerRow
from tests.integration.store_fixtures import POSTGRES

pytestmark = pytest.mark.integration
T0 = datetime(2026, 10, 1, 10, tzinfo=UTC)
TABLE = LedgerRow.__table__  # type: ignore[attr-defined]


def row(name: str, at: float, pod: str = "p") -> dict[str, Any]:
    arrival = T0 + timedelta(seconds=at)
    return {"source": "sidecar", "request_id": name, "tenant": "t", "model": "m",
            "feature": "chat", "endpoint": "chat", "pod": pod, "gpu": "", "arrival": arrival,
            "finish": arrival + timedelta(seconds=1), "outcome": "ok", "http_status": 200,
            "time_to_first_token": 0.2, "e2e_latency": 1.0, "prompt_tokens": 10,
            "output_tokens": 5}


def rolled_up(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(LedgerHour.requests), 0))
                                ).scalar() or 0)


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_a_row_committed_after_a_higher_id_was_rolled_up_is_counted(store: Store) -> None:
    slow = store.engine.connect()
    try:
        slow_txn = slow.begin()
        slow.execute(TABLE.insert(), [row("first", 10)])  # takes the lower id, commits late
        with store.engine.begin() as conn:
            conn.execute(TABLE.insert(), [row("second", 20)])
        with store.engine.connect() as conn:
            ids = dict(conn.execute(select(TABLE.c.request_id, TABLE.c.id)).all())
        assert ids == {"second": 2}  # "first" holds id 1, not visible yet
        rollup.refresh(store)
        # the horizon stops at the open transaction: "second" waits behind it rather than
        # letting the watermark pass "first"
        assert rolled_up(store) == 0
        assert rollup.pending(store) == 1
        slow_txn.commit()
    finally:
        slow.close()
    assert rollup.pending(store) == 2
    rollup.refresh(store)
    assert rolled_up(store) == 2
    assert rollup.pending(store) == 0
    rollup.refresh(store)  # nothing new: nothing counted twice
    assert rolled_up(store) == 2


@pytest.mark.parametrize("store", ["postgresql"], indirect=True)
def test_eight_writers_and_a_refreshing_reader_lose_nothing(store: Store) -> None:
    """Eight writers commit batches at random moments, each transaction held open a little
    while others commit, and the roll-up refreshes all the while: at the end it holds every
    row once."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        rng = random.Random(index)
        try:
            for batch in range(12):
                with store.engine.begin() as conn:
                    conn.execute(TABLE.insert(), [
                        row(f"w{index}-{batch}-{n}", rng.uniform(0, 3 * 3600), f"p{index % 3}")
                        for n in range(5)])
                    time.sleep(rng.uniform(0, 0.03))  # others commit meanwhile
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                rollup.refresh(store)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    refresher = threading.Thread(target=reader)
    refresher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    refresher.join()
    rollup.refresh(store)
    assert not errors, errors
    assert rolled_up(store) == 8 * 12 * 5


def test_a_postgresql_ledger_upgraded_mid_roll_up_counts_each_row_once() -> None:
    """Migration 0011 on a ledger whose roll-up had read up to id 1 of 2: the row rolled up
    gets txid 0, the waiting one the migration's transaction id, which becomes the
    watermark; the next refresh counts the waiting row and nothing twice."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = Store.open(POSTGRES, connect_args={"options": f"-csearch_path={schema}"},
                       migrate=False)
    try:
        store.upgrade("0010")
        with store.engine.begin() as conn:
            conn.execute(TABLE.insert(), [row("rolled", 10), row("waiting", 20)])
            conn.execute(text("INSERT INTO rollup_state (name, last_id)"
                              " VALUES ('ledger_hour', 1)"))
        store.upgrade()
        with store.engine.connect() as conn:
            txids = dict(conn.execute(select(TABLE.c.request_id, TABLE.c.txid)).all())
        assert txids["rolled"] == 0 and txids["waiting"] > 0
        with store.engine.connect() as conn:  # migration 0012: the rows' day has its partition
            assert retention.is_partitioned(conn)
            assert list(retention.partitions(conn)) == [T0.date()]
        assert rollup.pending(store) == 1  # "waiting" only
        rollup.refresh(store)
        # the hour holds both rows: "rolled" is rebuilt from its raw row with the new one
        assert rolled_up(store) == 2
        assert rollup.pending(store) == 0
    finally:
        store.close()
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
