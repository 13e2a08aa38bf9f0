"""The request ledger sink: RequestRecords into the store in batches, off the request path.

`record()` only appends to a list (it already runs on a sink thread, behind a bounded queue);
a flusher thread writes a batch when it reaches `batch_size` or every `interval` seconds.
Rows are keyed by (source, request_id) and inserted with insert-or-ignore, so a replayed
record never becomes a second row; request_id is the data plane's own id, the client's
X-Request-Id is kept apart. No row can stop the ledger: text is fitted to its column at the
boundary (and the row marked `truncated`), a row the store still refuses is quarantined with
the reason in `ledger_quarantine` and the rest of its batch is written. A store that is down
(unreachable, locked, table gone) fails the whole batch, which is kept and tried again.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlmodel import Session

from collectors.bins import gap_counts
from collectors.store import Store
from collectors.tables import EngineSnapshotRow, JournalOffset, LedgerQuarantine, LedgerRow
from engine_shim.records import EngineSnapshot, RequestRecord

log = logging.getLogger(__name__)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# text columns of the ledger and their lengths: values are cut to these at the boundary
_TEXT_LIMITS = {c.name: c.type.length for c in LedgerRow.__table__.columns  # type: ignore[attr-defined]
                if getattr(c.type, "length", None)}
# errors of the store itself (down, locked, table or grant gone): the batch waits; any other
# error is one row's value, and that row alone is quarantined
STORE_DOWN = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.ProgrammingError,
              sa_exc.InternalError)


def fit_row(row: dict[str, Any]) -> dict[str, Any]:
    """Text cut to its column's length (the row then marked `truncated`), non-finite
    measurements to None: what a hostile header or a broken engine sends cannot fail a
    batch. Counts out of a column's range are left to the store (and quarantine)."""
    cut = False
    for name, limit in _TEXT_LIMITS.items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            row[name], cut = value[:limit], True
    for name, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            row[name] = None if name != "e2e_latency" else 0.0
    row["truncated"] = cut
    return row


def write_rows(store: Store, session: Session, rows: list[dict[str, Any]], consumer: str
               ) -> int:
    """Insert-or-ignore `rows` in the session's transaction; a row the store refuses is
    written to ledger_quarantine with the reason instead. Returns how many were quarantined.
    Raises (nothing written) when the store itself is down."""
    if not rows:
        return 0
    try:
        with session.begin_nested():
            store.insert_ignore(session, LedgerRow, rows)
        return 0
    except STORE_DOWN:
        raise
    except Exception:  # one or more rows: find them, one savepoint each
        log.warning("ledger batch of %d rows refused; writing it row by row", len(rows))
    quarantined = 0
    for row in rows:
        try:
            with session.begin_nested():
                store.insert_ignore(session, LedgerRow, [row])
        except STORE_DOWN:
            raise
        except Exception as exc:
            quarantined += 1
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.error("ledger row %s quarantined: %s", row.get("request_id"), reason)
            session.add(LedgerQuarantine(
                consumer=consumer[:200], request_id=str(row.get("request_id"))[:128],
                reason=reason[:500], row=json.dumps(row, default=str),
                quarantined=datetime.now(UTC)))
    session.flush()
    return quarantined


def ledger_row(record: RequestRecord, gpu: str = "") -> dict[str, Any]:
    gaps = record.inter_token_gaps
    return fit_row({
        "source": record.source, "request_id": record.request_id,
        "client_request_id": record.client_request_id, "tenant": record.tenant,
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
        "itl_counts": gap_counts(gaps), "role": record.role,
    })


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
    """The ledger fed directly (the plugin; the sidecar without a journal). Rows wait in
    memory for their batch: a crash loses at most what waits (see docs/record-contract.md);
    while the store is down they are kept, up to `max_waiting`, and what is dropped beyond
    that is counted."""

    name = "ledger"

    def __init__(self, store: Store, *, batch_size: int = 500, interval: float = 1.0,
                 gpu: str = "", pod: str = "", max_waiting: int = 200_000) -> None:
        self.store = store
        self.batch_size, self.interval = batch_size, interval
        self.gpu, self.pod = gpu, pod
        self.max_waiting = max_waiting
        self.written = 0
        self.failures = 0  # batch writes the store refused (kept, tried again)
        self.dropped = 0  # rows dropped while the store was down and max_waiting was reached
        self.quarantined = 0
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
        """Write what waits, one batch of at most `batch_size` rows at a time."""
        written = 0
        while True:
            with self._lock:
                rows, self._rows = self._rows[:self.batch_size], self._rows[self.batch_size:]
                snapshots, self._snapshots = self._snapshots, []
            if not rows and not snapshots:
                return written
            try:
                with self.store.write_session() as session:
                    quarantined = write_rows(self.store, session, rows, self.name)
                    self.store.insert_ignore(session, EngineSnapshotRow, snapshots)
                    session.commit()
            except Exception:
                self.failures += 1
                log.exception("ledger write of %d rows failed; kept for the next try",
                              len(rows))
                with self._lock:
                    self._rows[:0], self._snapshots[:0] = rows, snapshots
                    over = len(self._rows) - self.max_waiting
                    if over > 0:  # the oldest go first, counted
                        del self._rows[:over]
                        self.dropped += over
                    del self._snapshots[:-1000]
                return written
            self.quarantined += quarantined
            self.written += len(rows) - quarantined
            written += len(rows) - quarantined

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
        self.quarantined = 0  # rows the store refused, kept in ledger_quarantine

    def resume_at(self) -> tuple[int, int]:
        with self.store.session() as session:
            row = session.get(JournalOffset, self.key)
            return (0, 0) if row is None else (int(row.segment), int(row.offset))

    def consume(self, records: Sequence[RequestRecord], end: tuple[int, int]) -> None:
        rows = [ledger_row(r, self.gpu) for r in records]
        with self.store.write_session() as session:
            quarantined = write_rows(self.store, session, rows, self.key)
            session.merge(JournalOffset(consumer=self.key, segment=end[0], offset=end[1],
                                        updated=datetime.now(UTC)))
            session.commit()
        self.quarantined += quarantined
        self.written += len(rows) - quarantined

    def close(self) -> None:
        """Everything consumed is committed already."""
