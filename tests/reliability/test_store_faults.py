"""PostgreSQL refusing the telemetry's writes: a grant revoked, then restored. The ledger
reads the journal on; every failed batch is counted and read again, and once the grant is
back every request is in the ledger exactly once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from sqlmodel import select

from collectors.ledger import LedgerConsumer
from collectors.store import Store
from collectors.tables import LedgerRow
from engine_shim.journal import JournalWriter
from engine_shim.tailer import Tailer
from tests.integration.store_fixtures import POSTGRES
from tests.integration.test_ledger import RECORD

pytestmark = pytest.mark.integration


@pytest.fixture
def schema_and_role() -> Iterator[tuple[str, str]]:
    """A fresh schema migrated by the superuser, and a login role that may write to it."""
    suffix = uuid.uuid4().hex[:10]
    schema, role = f"f_{suffix}", f"writer_{suffix}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE ROLE {role} LOGIN")
    Store.open(POSTGRES, connect_args={"options": f"-csearch_path={schema}"}).close()
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
    yield schema, role
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.execute(f"DROP ROLE {role}")


def grant(schema: str, role: str, verb: str) -> None:
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        word = "TO" if verb == "GRANT" else "FROM"
        conn.execute(f"{verb} INSERT ON {schema}.ledger {word} {role}")


def test_a_revoked_grant_holds_the_ledger_back_counted_and_loses_nothing(
        tmp_path: Path, schema_and_role: tuple[str, str]) -> None:
    schema, role = schema_and_role
    url = POSTGRES.replace("postgres@", f"{role}@")
    store = Store.open(url, connect_args={"options": f"-csearch_path={schema}"}, migrate=False)
    folder = tmp_path / "journal"
    writer = JournalWriter(folder)
    consumer = LedgerConsumer(store, "j-faults")
    tailer = Tailer(folder, [consumer], poll=0.02, retry=0.2, settle=0.2)
    tailer.start()

    def ids() -> list[str]:
        with store.session() as session:
            return sorted(session.exec(select(LedgerRow.request_id)).all())

    def wait(predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not predicate():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    try:
        for n in range(10):
            writer.record(replace(RECORD, request_id=f"a{n:02d}"))
        wait(lambda: len(ids()) == 10, "the first ten never arrived")
        grant(schema, role, "REVOKE")
        for n in range(10, 30):
            writer.record(replace(RECORD, request_id=f"a{n:02d}"))
        wait(lambda: tailer.stats()["ledger"].failures >= 2, "no failure was counted")
        assert len(ids()) == 10  # nothing half-written while refused
        grant(schema, role, "GRANT")
        wait(lambda: len(ids()) == 30, "the backlog never arrived")
    finally:
        tailer.close()
        writer.close()
        store.close()
    assert ids() == [f"a{n:02d}" for n in range(30)]  # each once
    assert consumer.quarantined == 0  # a store refusing is not a row's fault
    assert tailer.metrics()["ledger"][1] >= 2  # failed batches, as /metrics shows them


def test_a_locked_table_delays_the_ledger_and_the_lag_shows_it(
        tmp_path: Path, schema_and_role: tuple[str, str]) -> None:
    schema, _role = schema_and_role
    store = Store.open(POSTGRES, connect_args={"options": f"-csearch_path={schema}"})
    folder = tmp_path / "journal"
    writer = JournalWriter(folder)
    tailer = Tailer(folder, [LedgerConsumer(store, "j-lock")], poll=0.02, settle=0.2)
    tailer.start()
    try:
        with psycopg.connect(POSTGRES) as locker:  # a migration or a long report, say
            locker.execute(f"LOCK TABLE {schema}.ledger IN ACCESS EXCLUSIVE MODE")
            for n in range(5):
                writer.record(replace(RECORD, request_id=f"l{n}"))
            time.sleep(1.0)
            assert tailer.lag_bytes()["ledger"] > 0  # waiting, visibly
            locker.rollback()  # the lock goes
        deadline = time.monotonic() + 20
        while tailer.lag_bytes()["ledger"] > 0:
            assert time.monotonic() < deadline, "the ledger never caught up"
            time.sleep(0.05)
    finally:
        tailer.close()
        writer.close()
    with store.session() as session:
        assert sorted(session.exec(select(LedgerRow.request_id)).all()) == [
            f"l{n}" for n in range(5)]
    store.close()
