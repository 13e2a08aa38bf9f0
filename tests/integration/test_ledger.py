"""The ledger sink on both databases: batches, replays, snapshots, and the sidecar wiring."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import func, select

from collectors.ledger import LedgerSink
from collectors.store import Store
from collectors.tables import EngineSnapshotRow, LedgerRow
from engine_shim.records import EngineSnapshot, RequestRecord

pytestmark = pytest.mark.integration

RECORD = RequestRecord(
    request_id="r0", tenant="acme", model="llama", feature="chat",
    endpoint="/v1/chat/completions", arrival_time=1_790_000_000.0,
    finish_time=1_790_000_001.5, outcome="ok", http_status=200,
    first_token_time=1_790_000_000.2, inter_token_gaps=(0.01, 0.03), prompt_tokens=40,
    output_tokens=3, cached_prompt_tokens=16, finish_reason="length", trace_id="ab" * 16,
    pod="vllm-0")


def count(store: Store, model: type[LedgerRow] | type[EngineSnapshotRow]) -> int:
    with store.session() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_rows_arrive_in_batches_and_replays_do_not_duplicate(store: Store) -> None:
    sink = LedgerSink(store, batch_size=50, interval=60.0, gpu="H100-80GB")
    for i in range(120):
        sink.record(replace(RECORD, request_id=f"r{i}"))
    sink.record(replace(RECORD, request_id="r5"))  # a replayed record
    sink.record_snapshot(EngineSnapshot(time=1_790_000_000.0, engine="e", model="llama",
                                        up=True, kv_cache_usage=0.4))
    sink.close()  # flushes the partial batch
    assert count(store, LedgerRow) == 120 and count(store, EngineSnapshotRow) == 1
    with store.session() as session:
        row = session.exec(select(LedgerRow).where(LedgerRow.request_id == "r7")).one()
    assert (row.tenant, row.gpu, row.pod, row.output_tokens) == ("acme", "H100-80GB", "vllm-0", 3)
    assert row.time_to_first_token == pytest.approx(0.2)
    assert row.mean_inter_token_latency == pytest.approx(0.02)
    assert row.arrival.timestamp() == pytest.approx(1_790_000_000.0)


def test_a_partial_batch_is_written_by_the_timer(store: Store) -> None:
    import time

    sink = LedgerSink(store, batch_size=1000, interval=0.2)
    sink.record(RECORD)
    deadline = time.monotonic() + 5
    while count(store, LedgerRow) == 0:
        assert time.monotonic() < deadline, "the flusher never wrote the row"
        time.sleep(0.05)
    sink.close()


def test_the_sidecar_writes_its_ledger(tmp_path: Path) -> None:
    from tests.integration.helpers import BackgroundApps, sidecar
    from tests.integration.test_otel_traces import send
    from tests.integration.test_sidecar_fidelity import scripted_upstream

    apps = BackgroundApps()
    upstream = apps.serve(scripted_upstream([]))
    database = tmp_path / "ledger.sqlite"
    with sidecar(tmp_path, upstream, env={"LLMKPI_DATABASE_URL": str(database),
                                          "LLMKPI_LEDGER": "true"}) as proc:
        for tenant in ("acme", "beta"):
            asyncio.run(send(proc.url, {"X-Tenant": tenant}))
        proc.records(expect=2)
    apps.close()
    store = Store.open(str(database))
    with store.session() as session:
        rows = session.exec(select(LedgerRow)).all()
    assert sorted(r.tenant for r in rows) == ["acme", "beta"]
    assert all(r.output_tokens == 6 and r.source == "sidecar" for r in rows)
