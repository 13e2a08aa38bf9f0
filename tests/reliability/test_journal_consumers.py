"""Durable journal consumers: the ledger and the outbox commit the journal position with the
rows they derive, so a telemetry process killed at any instant loses and repeats nothing
(SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import select

from collectors.ledger import LedgerConsumer
from collectors.store import Store
from collectors.tables import JournalOffset, LedgerRow
from engine_shim import journal
from engine_shim.journal import START, JournalReader, JournalWriter, Position
from engine_shim.records import RequestRecord
from engine_shim.tailer import Tailer
from exporters.outbox import Outbox

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

RECORD = RequestRecord(
    request_id="r0", tenant="acme", model="llama", feature="chat",
    endpoint="/v1/chat/completions", arrival_time=1_790_000_000.0,
    finish_time=1_790_000_001.5, outcome="ok", http_status=200,
    first_token_time=1_790_000_000.2, inter_token_gaps=(0.01, 0.03), prompt_tokens=40,
    output_tokens=3, pod="vllm-0")


def ledger_ids(store: Store) -> list[str]:
    with store.session() as session:
        return sorted(session.exec(select(LedgerRow.request_id)).all())


def outbox_events(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE event ="
                              " 'llm_request_completed'").fetchone()[0])


def ids_before(folder: Path, end: Position) -> list[str]:
    """The request ids of the journal's lines before a position."""
    out = []
    reader = JournalReader(folder, START, settle=0)
    while True:
        batch = reader.read(1000)
        if not batch:
            return sorted(out)
        out += [r.request_id for r, at in batch if at <= end]


def test_a_batch_and_its_position_commit_together(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "journal"
    writer = JournalWriter(folder)
    for n in range(5):
        writer.record(replace(RECORD, request_id=f"r{n}"))
    name = journal.journal_id(folder)
    consumer = LedgerConsumer(store, name)
    assert consumer.resume_at() == (0, 0)
    tailer = Tailer(folder, [consumer], batch=2, settle=0)
    tailer.followers[0].drain()
    end = tailer.followers[0].stats.position
    assert ledger_ids(store) == ["r0", "r1", "r2", "r3", "r4"]
    assert consumer.resume_at() == tuple(end) and end.offset == (folder / journal.segment_name(
        1)).stat().st_size
    with store.session() as session:
        assert session.get(JournalOffset, f"ledger:{name}") is not None
    # a consumer that failed on a batch committed nothing of it and reads it again
    calls = {"n": 0}
    real = consumer.consume

    def flaky(records: object, at: tuple[int, int]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        real(records, at)  # type: ignore[arg-type]

    consumer.consume = flaky  # type: ignore[method-assign]
    writer.record(replace(RECORD, request_id="r5"))
    follower = Tailer(folder, [consumer], settle=0, retry=0.01).followers[0]
    follower.thread.start()
    deadline = time.monotonic() + 10
    while ledger_ids(store)[-1:] != ["r5"]:
        assert time.monotonic() < deadline, "the failed batch was not read again"
        time.sleep(0.02)
    follower.stop.set()
    follower.thread.join(5)
    assert follower.stats.failures == 1 and len(ledger_ids(store)) == 6


def test_killed_at_any_instant_the_ledger_and_outbox_hold_each_request_once(
        store: Store, tmp_path: Path) -> None:
    folder, outbox_path = tmp_path / "journal", tmp_path / "outbox.sqlite"
    writer = JournalWriter(folder, max_bytes=60_000)  # ~95 lines a segment: rotations
    name = journal.journal_id(folder)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    url = str(store.engine.url.render_as_string(hide_password=False))
    schema = store.engine.dialect.name == "postgresql" and _search_path(store)
    if schema:
        env["LLMKPI_TEST_SEARCH_PATH"] = schema
    worker_cmd = [sys.executable, "-m", "tests.integration.journal_worker", str(folder), url,
                  str(outbox_path)]
    rng = random.Random(7)
    written, kills = 0, 0
    ledger = LedgerConsumer(store, name)
    while written < 1500:
        worker = subprocess.Popen(worker_cmd, env=env, stdout=subprocess.PIPE, text=True)
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        stop_at = time.monotonic() + rng.uniform(0.05, 0.6)
        while time.monotonic() < stop_at:
            writer.record(replace(RECORD, request_id=f"r{written:05d}"))
            written += 1
            time.sleep(rng.uniform(0, 0.002))
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        kills += 1
        # whatever the instant, the rows are exactly the lines before the committed position
        committed = Position(*ledger.resume_at())
        assert ledger_ids(store) == ids_before(folder, committed)
        outbox = Outbox(outbox_path)
        at = Position(*outbox.position(f"mixpanel:{name}"))
        outbox.close()
        assert outbox_events(outbox_path) == len(ids_before(folder, at))
    # a last worker catches up with everything written
    worker = subprocess.Popen(worker_cmd, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(ledger_ids(store)) < written or outbox_events(outbox_path) < written:
        assert time.monotonic() < deadline, (len(ledger_ids(store)), written)
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert ledger_ids(store) == [f"r{n:05d}" for n in range(written)]
    assert outbox_events(outbox_path) == written
    assert kills >= 5 and len(journal.segments(folder)) > 10


def lines(path: Path, expect: int, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = path.read_text().splitlines() if path.exists() else []
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _search_path(store: Store) -> str:
    with store.engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW search_path").scalar())


def test_the_sidecar_hands_records_to_its_sinks_through_the_journal(tmp_path: Path) -> None:
    """`--journal`: every sink reads the journal; a restart (even after SIGKILL) resumes each
    one where it stopped, so the ledger, the outbox and the records file hold each request
    once, and /metrics says how far each consumer got."""
    import asyncio

    from tests.integration.helpers import BackgroundApps, sidecar
    from tests.integration.test_otel_traces import send
    from tests.integration.test_sidecar_fidelity import scripted_upstream

    apps = BackgroundApps()
    upstream = apps.serve(scripted_upstream([]))
    folder, database = tmp_path / "journal", tmp_path / "ledger.sqlite"
    env = {"LLMKPI_DATABASE_URL": str(database), "LLMKPI_LEDGER": "true"}
    records_file = tmp_path / "records.jsonl"  # the same file across the restart
    extra = ("--journal", str(folder), "--outbox", str(tmp_path / "outbox.sqlite"),
             "--records-out", str(records_file))
    with sidecar(tmp_path, upstream, *extra, env=env) as proc:
        for n in range(3):
            asyncio.run(send(proc.url, {"X-Tenant": f"t{n}", "X-Request-Id": f"a{n}"}))
        assert len(lines(records_file, 3)) == 3
        text = proc.metrics_text(requests=3)
        for consumer in ("prometheus", "ledger", "mixpanel", "jsonl"):
            assert f'llmkpi_journal_records_total{{consumer="{consumer}"}} 3.0' in text
            assert f'llmkpi_journal_lag_bytes{{consumer="{consumer}"}} 0.0' in text
        time.sleep(1.5)  # volatile consumers write their position at most once a second
        proc.started.process.send_signal(signal.SIGKILL)  # no goodbye: positions stay put
        proc.started.process.wait(10)
    with sidecar(tmp_path, upstream, *extra, env=env) as proc:
        asyncio.run(send(proc.url, {"X-Tenant": "t9", "X-Request-Id": "b0"}))
        records = [RequestRecord.from_dict(json.loads(x)) for x in lines(records_file, 4)]
        text = proc.metrics_text(requests=1)
        assert 'llmkpi_journal_records_total{consumer="ledger"} 1.0' in text
    apps.close()
    assert len(records) == 4
    assert sorted(str(r.client_request_id) for r in records) == ["a0", "a1", "a2", "b0"]
    assert len({r.request_id for r in records}) == 4  # not a0 twice
    store = Store.open(str(database))
    with store.session() as session:
        assert sorted(str(r) for r in session.exec(select(LedgerRow.client_request_id))) == [
            "a0", "a1", "a2", "b0"]
    assert len(ledger_ids(store)) == 4
    store.close()
    assert outbox_events(tmp_path / "outbox.sqlite") == 4
    assert journal.segments(folder) == [1]
