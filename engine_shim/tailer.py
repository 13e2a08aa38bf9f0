"""The telemetry plane's side of the journal: each consumer reads it at its own position.

A consumer is a sink that knows where it is in the journal. A durable one (the ledger, the
outbox) commits the position after a batch in the same transaction as the rows it derived
from that batch, so a crash at any instant resumes exactly there: nothing lost, nothing
twice. A volatile one (Prometheus, OTel, a records file) is a plain RecordSink whose
position is kept in a small file at most once a second: after a crash it sees at most the
last second of records again.

Each consumer has its own reader and thread: a slow or failing sink falls behind on disk,
never holds the others back and never drops a record; a batch that raised is read again
from the consumer's committed position after a pause. Lines, quarantined lines, failures
and each consumer's lag are counted for /metrics.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from engine_shim.journal import START, JournalReader, Position, prune, segment_name, segments
from engine_shim.records import RecordSink, RequestRecord

log = logging.getLogger(__name__)

OFFSETS = "offsets"


@runtime_checkable
class JournalConsumer(Protocol):
    """A sink that reads the journal: where to resume, and a batch with the position after
    it (a durable consumer commits both together; raising means nothing was committed).
    Positions are (segment, byte offset) pairs, so consumers outside engine_shim need only
    plain tuples."""

    name: str

    def resume_at(self) -> tuple[int, int]: ...

    def consume(self, records: Sequence[RequestRecord], end: tuple[int, int]) -> None: ...

    def close(self) -> None: ...


class VolatileConsumer:
    """A plain RecordSink behind the journal, its position in `offsets/<name>` (written
    atomically at most every `every` seconds, and at close)."""

    def __init__(self, sink: RecordSink, folder: Path, name: str | None = None, *,
                 every: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.name = name or str(getattr(sink, "name", type(sink).__name__))
        self._path = folder / OFFSETS / self.name
        self.every, self.clock = every, clock
        self._written_at: float | None = None
        self._unwritten: tuple[int, int] | None = None

    def resume_at(self) -> Position:
        try:
            return Position.parse(self._path.read_text().strip())
        except (OSError, ValueError):
            return START

    def consume(self, records: Sequence[RequestRecord], end: tuple[int, int]) -> None:
        for record in records:
            self.sink.record(record)
        self._unwritten = end
        now = self.clock()
        if self._written_at is None or now - self._written_at >= self.every:
            self._write()
            self._written_at = now

    def tick(self) -> None:
        """Idle: write a position not written yet once `every` has passed."""
        if self._unwritten is not None and (
                self._written_at is None or self.clock() - self._written_at >= self.every):
            self._write()
            self._written_at = self.clock()

    def _write(self) -> None:
        if self._unwritten is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(Position(*self._unwritten).text() + "\n")
        temporary.replace(self._path)
        self._unwritten = None

    def close(self) -> None:
        self._write()
        self.sink.close()


@dataclass
class ConsumerStats:
    records: int = 0
    failures: int = 0
    quarantined: int = 0
    position: Position = START


class _Follower:
    """One consumer's reader loop."""

    def __init__(self, folder: Path, consumer: JournalConsumer, *, batch: int, poll: float,
                 retry: float, settle: float, clock: Callable[[], float] | None) -> None:
        self.folder, self.consumer = folder, consumer
        self.batch, self.poll, self.retry = batch, poll, retry
        self.settle, self.clock = settle, clock
        self.stats = ConsumerStats()
        self.reader = self._reader()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"journal-{consumer.name}",
                                       daemon=True)

    def _reader(self) -> JournalReader:
        start = Position(*self.consumer.resume_at())
        self.stats.position = start
        if self.clock is None:
            return JournalReader(self.folder, start, settle=self.settle)
        return JournalReader(self.folder, start, settle=self.settle, clock=self.clock)

    def step(self) -> int:
        """Read and hand over one batch; returns how many records it held."""
        before = self.reader.stats.quarantined
        batch = self.reader.read(self.batch)
        self.stats.quarantined += self.reader.stats.quarantined - before
        if not batch:
            self.stats.position = self.reader.position
            tick = getattr(self.consumer, "tick", None)
            if tick is not None:
                tick()
            return 0
        self.consumer.consume([r for r, _ in batch], batch[-1][1])
        self.stats.records += len(batch)
        self.stats.position = batch[-1][1]
        return len(batch)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                if self.step() == 0:
                    self.stop.wait(self.poll)
            except Exception:
                self.stats.failures += 1
                log.exception("journal consumer %s failed on a batch; reading it again from"
                              " its committed position in %.1f s", self.consumer.name,
                              self.retry)
                self.stop.wait(self.retry)
                self.reader.close()
                self.reader = self._reader()

    def drain(self) -> None:
        """Hand over whatever is readable now (at close)."""
        try:
            while self.step():
                pass
        except Exception:
            self.stats.failures += 1
            log.exception("journal consumer %s failed while draining", self.consumer.name)


class Tailer:
    """Runs every consumer of one journal folder, and deletes segments all have passed."""

    def __init__(self, folder: Path, consumers: Sequence[JournalConsumer], *,
                 batch: int = 500, poll: float = 0.05, retry: float = 1.0,
                 settle: float = 2.0, clock: Callable[[], float] | None = None,
                 prune_every: float = 10.0) -> None:
        self.folder = folder
        self.followers = [_Follower(folder, c, batch=batch, poll=poll, retry=retry,
                                    settle=settle, clock=clock) for c in consumers]
        self.prune_every = prune_every
        self._stop = threading.Event()
        self._pruner = threading.Thread(target=self._prune_loop, name="journal-prune",
                                        daemon=True)

    def start(self) -> None:
        for follower in self.followers:
            follower.thread.start()
        if self.prune_every > 0:
            self._pruner.start()

    def _prune_loop(self) -> None:
        while not self._stop.wait(self.prune_every):
            try:
                gone = self.prune()
                if gone:
                    log.info("journal: deleted segments %s, read by every consumer", gone)
            except OSError:
                log.exception("journal: could not delete old segments")

    def stats(self) -> Mapping[str, ConsumerStats]:
        return {f.consumer.name: f.stats for f in self.followers}

    def lag_bytes(self) -> dict[str, int]:
        """How far each consumer is behind the end of the journal, in bytes."""
        sizes: dict[int, int] = {}
        out = {}
        for follower in self.followers:
            at = follower.stats.position
            behind = 0
            for seq in (s for s in segments(self.folder) if s >= at.segment):
                if seq not in sizes:
                    try:
                        sizes[seq] = (self.folder / segment_name(seq)).stat().st_size
                    except OSError:
                        sizes[seq] = 0
                behind += sizes[seq] - (at.offset if seq == at.segment else 0)
            out[follower.consumer.name] = max(0, behind)
        return out

    def metrics(self) -> dict[str, tuple[float, float, float, float]]:
        """{consumer: (records, failed batches, quarantined lines, lag bytes)} for /metrics."""
        lag = self.lag_bytes()
        return {f.consumer.name: (
            f.stats.records, f.stats.failures,
            f.stats.quarantined + int(getattr(f.consumer, "quarantined", 0)),
            lag.get(f.consumer.name, 0)) for f in self.followers}

    def prune(self) -> list[int]:
        return prune(self.folder, [f.stats.position for f in self.followers])

    def close(self, timeout: float = 5.0) -> None:
        """Stop the readers, hand over what was written until now, close the consumers."""
        self._stop.set()
        for follower in self.followers:
            follower.stop.set()
        for follower in self.followers:
            if follower.thread.is_alive():
                follower.thread.join(timeout)
            follower.drain()
            follower.reader.close()
            try:
                follower.consumer.close()
            except Exception:
                log.exception("journal consumer %s failed to close", follower.consumer.name)

