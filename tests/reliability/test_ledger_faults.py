"""The ledger under hostile values and a failing store, on both databases: no row stops a
batch, every refusal and failure is counted, nothing waiting is lost."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from sqlalchemy import text
from sqlmodel import select

from collectors.ledger import STORE_DOWN, LedgerConsumer, LedgerSink
from collectors.store import Store
from collectors.tables import JournalOffset, LedgerQuarantine, LedgerRow
from tests.integration.test_ledger import RECORD, count

pytestmark = pytest.mark.integration


def rows(store: Store) -> dict[str, LedgerRow]:
    with store.session() as session:
        return {r.request_id: r for r in session.exec(select(LedgerRow)).all()}


def test_over_long_text_is_cut_and_marked_not_a_failed_batch(store: Store) -> None:
    sink = LedgerSink(store, batch_size=10, interval=60.0)
    sink.record(replace(RECORD, request_id="long-ids", client_request_id="c" * 200,
                        model="m" * 300, finish_reason="f" * 40))
    sink.record(replace(RECORD, request_id="plain"))
    sink.close()
    got = rows(store)
    assert sorted(got) == ["long-ids", "plain"]
    cut = got["long-ids"]
    # columns: client_request_id 128, model 256, finish_reason 32 characters
    assert (len(cut.client_request_id or ""), len(cut.model), len(cut.finish_reason or "")) \
        == (128, 256, 32)
    assert cut.truncated and not got["plain"].truncated
    assert (sink.failures, sink.quarantined, sink.dropped) == (0, 0, 0)


def test_a_value_the_store_refuses_is_quarantined_and_the_rest_written(store: Store) -> None:
    """2**70 prompt tokens fit no integer column (PostgreSQL: out of range; SQLite: too big
    for a 64-bit integer): that row goes to ledger_quarantine with the reason, the other
    four of its batch and the journal position are committed together."""
    consumer = LedgerConsumer(store, "j1")
    batch = [replace(RECORD, request_id=f"r{n}") for n in range(5)]
    batch[2] = replace(batch[2], prompt_tokens=2 ** 70)
    consumer.consume(batch, (3, 4096))
    assert sorted(rows(store)) == ["r0", "r1", "r3", "r4"]
    assert consumer.quarantined == 1 and consumer.written == 4
    assert consumer.resume_at() == (3, 4096)
    with store.session() as session:
        (kept,) = session.exec(select(LedgerQuarantine)).all()
    assert (kept.consumer, kept.request_id) == ("ledger:j1", "r2")
    assert kept.reason and json.loads(kept.row)["prompt_tokens"] == 2 ** 70
    consumer.consume(batch, (3, 4096))  # the same batch again (a replay): nothing twice
    assert count(store, LedgerRow) == 4
    with store.session() as session:
        assert len(session.exec(select(LedgerQuarantine)).all()) == 2  # the replay's refusal
    assert consumer.quarantined == 2


def test_two_requests_with_one_client_id_are_two_rows(store: Store) -> None:
    sink = LedgerSink(store, batch_size=10, interval=60.0)
    sink.record(replace(RECORD, request_id="a1", client_request_id="same"))
    sink.record(replace(RECORD, request_id="b2", client_request_id="same"))
    sink.close()
    got = rows(store)
    assert sorted(got) == ["a1", "b2"]
    assert {r.client_request_id for r in got.values()} == {"same"}


def test_a_dropped_table_fails_the_batch_counted_and_kept_until_restored(store: Store) -> None:
    sink = LedgerSink(store, batch_size=1000, interval=60.0, max_waiting=30)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger RENAME TO ledger_away"))
    for n in range(20):
        sink.record(replace(RECORD, request_id=f"w{n}"))
    assert sink.flush() == 0
    for n in range(20, 40):  # 40 waiting, 30 kept: the 10 oldest dropped and counted
        sink.record(replace(RECORD, request_id=f"w{n}"))
    assert sink.flush() == 0
    assert sink.failures == 2 and sink.dropped == 10
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_away RENAME TO ledger"))
    assert sink.flush() == 30
    sink.close()
    assert sorted(rows(store), key=lambda r: int(r[1:])) == [f"w{n}" for n in range(10, 40)]
    assert (sink.failures, sink.dropped, sink.quarantined) == (2, 10, 0)


def test_a_store_that_is_down_commits_neither_rows_nor_position(store: Store) -> None:
    consumer = LedgerConsumer(store, "j2")
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger RENAME TO ledger_away"))
    with pytest.raises(STORE_DOWN):  # the tailer counts it and reads the batch again
        consumer.consume([replace(RECORD, request_id="x")], (1, 100))
    with store.session() as session:
        assert session.get(JournalOffset, "ledger:j2") is None
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger_away RENAME TO ledger"))
    consumer.consume([replace(RECORD, request_id="x")], (1, 100))
    assert sorted(rows(store)) == ["x"] and consumer.resume_at() == (1, 100)
