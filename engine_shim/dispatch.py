"""Bounded, non-blocking hand-off from the request path to sinks, one worker thread per sink.

The request path only enqueues; a full queue drops the record and counts it. A sink that
raises is logged and counted, never propagated. A slow sink fills only its own queue.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping, Sequence

from engine_shim.records import EngineSnapshot, RecordSink, RequestRecord

log = logging.getLogger(__name__)

_STOP = object()


class BoundedSink:
    """Wraps one sink with a bounded queue and a daemon worker thread."""

    def __init__(self, sink: RecordSink, *, capacity: int = 10_000, name: str | None = None):
        self.sink = sink
        self.name: str = name or str(getattr(sink, "name", type(sink).__name__))
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
        self._thread.start()

    def record(self, record: RequestRecord) -> None:
        self._offer(record)

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        self._offer(snapshot)

    def _offer(self, item: object) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if isinstance(item, RequestRecord):
                    self.sink.record(item)
                elif isinstance(item, EngineSnapshot):
                    self.sink.record_snapshot(item)
            except Exception:
                self.failed += 1
                log.exception("sink %s failed on a record; continuing", self.name)

    def close(self, timeout: float = 5.0) -> None:
        """Drain what is queued (up to `timeout`), then close the wrapped sink."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("sink %s: queue still full at close; %d queued records lost",
                        self.name, self._queue.qsize())
        self._thread.join(timeout)
        try:
            self.sink.close()
        except Exception:
            log.exception("sink %s failed to close", self.name)


class FanOut:
    """Hands each record to every bounded sink; this is what the request path calls."""

    def __init__(self, sinks: Sequence[BoundedSink]) -> None:
        self.sinks = list(sinks)

    def record(self, record: RequestRecord) -> None:
        for sink in self.sinks:
            sink.record(record)

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        for sink in self.sinks:
            sink.record_snapshot(snapshot)

    def stats(self) -> Mapping[str, tuple[int, int, int, int]]:
        """{sink: (dropped, failed, write failures, quarantined)}: records its full queue
        dropped (plus any a batching sink had to drop itself), records it raised on, batch
        writes its store refused (kept and tried again), records its store refused for
        good and kept aside with the reason."""
        return {s.name: (s.dropped + int(getattr(s.sink, "dropped", 0)), s.failed,
                         int(getattr(s.sink, "failures", 0)),
                         int(getattr(s.sink, "quarantined", 0))) for s in self.sinks}

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
