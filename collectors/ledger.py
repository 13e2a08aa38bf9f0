"""The request ledger sink: RequestRecords into the store in batches, off the request path.

`record()` only appends to a list (it already runs on a sink thread, behind a bounded queue);
a flusher thread writes a batch when it reaches `batch_size` or every `interval` seconds.
Rows are keyed by (source, request_id) and inserted with insert-or-ignore, so a replayed
record never becomes a second row. A failed write keeps the batch for the next try.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from collectors import usage
from collectors.store import Store
from collectors.tables import EngineSnapshotRow, JournalOffset, LedgerRow
from engine_shim.records import EngineSnapshot, RequestRecord

log = logging.getLogger(__name__)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def ledger_row(record: RequestRecord, gpu: str = "") -> dict[str, Any]:
    gaps = record.inter_token_gaps
    return {
        "source": record.source, "request_id": record.request_id, "tenant": record.tenant,
        "model": record.model, "feature": record.feature, "endpoint": record.endpoint,
        "pod": record.pod, "gpu": gpu, "arrival": utc(record.arrival_time),
        "finish": utc(record.finish_time), "outcome": record.outcome,
        "http_status": record.http_status, "time_to_first_token": record.time_to_first_token,
        "e2e_latency": record.e2e_latency,
        "mean_inter_token_latency": statistics.fmean(gaps) if gaps
        else record.time_per_output_token,
        "queue_time": record.queue_time, "prefill_time": record.prefill_time,
        "decode_time": record.decode_time, "prompt_tokens": record.prompt_tokens,
        "output_tokens": record.output_tokens,
        "cached_prompt_tokens": record.cached_prompt_tokens,
        "finish_reason": record.finish_reason, "trace_id": record.trace_id,
        "itl_counts": usage.gap_counts(gaps),
    }


def snapshot_row(snapshot: EngineSnapshot, pod: str = "") -> dict[str, Any]:
    return {
        "taken": utc(snapshot.time), "engine": snapshot.engine, "model": snapshot.model,
        "pod": pod, "up": snapshot.up, "kv_cache_usage": snapshot.kv_cache_usage,
        "requests_running": snapshot.requests_running,
        "requests_waiting": snapshot.requests_waiting,
        "preemptions_total": snapshot.preemptions_total,
        "prefix_cache_queries_total": snapshot.prefix_cache_queries_total,
        "prefix_cache_hits_total": snapshot.prefix_cache_hits_total,
    }


class LedgerSink:
    name = "ledger"

    def __init__(self, store: Store, *, batch_size: int = 500, interval: float = 1.0,
                 gpu: str = "", pod: str = "") -> None:
        self.store = store
        self.batch_size, self.interval = batch_size, interval
        self.gpu, self.pod = gpu, pod
        self.written = 0
        self.failures = 0
        self._rows: list[dict[str, Any]] = []
        self._snapshots: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._full = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-flush", daemon=True)
        self._thread.start()

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._rows.append(ledger_row(record, self.gpu))
            if len(self._rows) >= self.batch_size:
                self._full.set()

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        with self._lock:
            self._snapshots.append(snapshot_row(snapshot, self.pod))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._full.wait(self.interval)
            self._full.clear()
            self.flush()

    def flush(self) -> int:
        with self._lock:
            rows, self._rows = self._rows, []
            snapshots, self._snapshots = self._snapshots, []
        if not rows and not snapshots:
            return 0
        try:
            with self.store.session() as session:
                self.store.insert_ignore(session, LedgerRow, rows)
                self.store.insert_ignore(session, EngineSnapshotRow, snapshots)
                session.commit()
        except Exception:
            self.failures += 1
            log.exception("ledger write of %d rows failed; kept for the next try", len(rows))
            with self._lock:
                self._rows[:0], self._snapshots[:0] = rows, snapshots
            return 0
        self.written += len(rows)
        return len(rows)

    def close(self) -> None:
        self._stop.set()
        self._full.set()
        self._thread.join(10)
        self.flush()


class LedgerConsumer:
    """The ledger as a durable journal consumer (engine_shim/tailer.py): a batch's rows and
    the journal position after it are committed in one transaction, so a telemetry process
    killed at any instant resumes exactly after the last committed batch. Rows are still
    inserted or ignored by (source, request_id): a journal read twice by mistake stays
    one row per request."""

    name = "ledger"

    def __init__(self, store: Store, journal: str, *, gpu: str = "") -> None:
        self.store = store
        self.key = f"ledger:{journal}"
        self.gpu = gpu
        self.written = 0

    def resume_at(self) -> tuple[int, int]:
        with self.store.session() as session:
            row = session.get(JournalOffset, self.key)
            return (0, 0) if row is None else (int(row.segment), int(row.offset))

    def consume(self, records: Sequence[RequestRecord], end: tuple[int, int]) -> None:
        rows = [ledger_row(r, self.gpu) for r in records]
        with self.store.session() as session:
            self.store.insert_ignore(session, LedgerRow, rows)
            session.merge(JournalOffset(consumer=self.key, segment=end[0], offset=end[1],
                                        updated=datetime.now(UTC)))
            session.commit()
        self.written += len(rows)

    def close(self) -> None:
        """Everything consumed is committed already."""
