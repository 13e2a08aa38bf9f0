"""The journal: the data plane's one hand-off to the telemetry plane, a folder of JSON lines.

Either data plane (nginx + Lua, or the Python proxy) appends one line per finished request
to `journal.jsonl` in the folder: a symlink to the newest segment `journal.<seq>.jsonl`
(seq: 12 digits, counting up). The line is the record contract (docs/record-contract.md):
the fields of `RequestRecord.to_dict()`, times in epoch seconds at microsecond resolution.

Rotation starts a new segment and turns the link to it; a writer that opened the link
before keeps appending to the old segment until it reopens (nginx on USR1, the Python writer
at once), so a reader finishes a segment only once a newer one exists and the old one is
sealed (`journal.<seq>.sealed`: its writers have all moved on; the Python writer seals as it
rotates, the nginx supervisor once nginx has reopened) or has stopped growing for `settle`
seconds. Lines are appended whole by one write (O_APPEND), so
a reader sees a line only once its newline is there.

A reader starts at a `Position` (segment, byte offset) and returns each record with the
position just after it: a consumer that commits that position with what it derived from
the record resumes there after a crash, losing and repeating nothing. A line that is not a
record is counted and copied to `quarantine.jsonl` with the reason, never silently skipped.
Segments every consumer has passed are deleted by `prune`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from engine_shim.records import EngineSnapshot, RecordSink, RequestRecord

log = logging.getLogger(__name__)

LINK = "journal.jsonl"
QUARANTINE = "quarantine.jsonl"
_SEGMENT = re.compile(r"journal\.(\d{12})\.jsonl")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_SETTLE = 2.0
MAX_LINE = 16 * 1024 * 1024  # a longer line is quarantined in pieces, never held whole


class Position(NamedTuple):
    """Where a reader is: a segment's sequence number and a byte offset inside it."""

    segment: int
    offset: int

    def text(self) -> str:
        return f"{self.segment}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        segment, _, offset = text.partition(":")
        return cls(int(segment), int(offset))


START = Position(0, 0)


def segment_name(seq: int) -> str:
    return f"journal.{seq:012d}.jsonl"


def segments(folder: Path) -> list[int]:
    """The folder's segments, oldest first."""
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir()
                  if (m := _SEGMENT.fullmatch(p.name)))


def current(folder: Path) -> int | None:
    """The segment the link points at, or None before the first."""
    link = folder / LINK
    if not link.is_symlink():
        return None
    m = _SEGMENT.fullmatch(os.readlink(link))
    return int(m.group(1)) if m else None


def rotate(folder: Path) -> int:
    """Start the next segment and turn the link to it (atomically: a rename over the link).
    Writers that opened the link before write on to the old segment until they reopen."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = segments(folder)
    seq = (existing[-1] + 1) if existing else 1
    (folder / segment_name(seq)).touch()
    temporary = folder / f".{LINK}.{os.getpid()}.{threading.get_ident()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(segment_name(seq))
    temporary.replace(folder / LINK)
    return seq


def seal(folder: Path, seq: int) -> None:
    """Say that no writer will append to segment `seq` again."""
    (folder / _sealed_name(seq)).touch()


def _sealed_name(seq: int) -> str:
    return f"journal.{seq:012d}.sealed"


def ensure(folder: Path) -> int:
    """The current segment, starting the first one in an empty folder."""
    seq = current(folder)
    if seq is None or not (folder / segment_name(seq)).exists():
        seq = rotate(folder)
    return seq


def journal_id(folder: Path) -> str:
    """The journal's identity (`journal.id`, made once): durable consumers key their
    committed position by it, so two sidecars sharing a store keep apart."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "journal.id"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        for _ in range(50):  # another process is writing it this instant
            text = path.read_text().strip()
            if text:
                return text
            time.sleep(0.01)
        raise ValueError(f"{path}: empty journal id") from None
    made = uuid.uuid4().hex
    os.write(fd, (made + "\n").encode())
    os.close(fd)
    return made


def record_line(record: RequestRecord) -> bytes:
    """One record as its journal line (the contract: RequestRecord.to_dict(), one line)."""
    return (json.dumps(record.to_dict(), separators=(",", ":"), ensure_ascii=False)
            + "\n").encode()


class JournalWriter:
    """The Python data plane's writer: a RecordSink appending one line per record, a new
    segment past `max_bytes`. Each line is one os.write on an O_APPEND descriptor."""

    name = "journal"

    def __init__(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 snapshots: RecordSink | None = None) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.snapshots = snapshots  # engine snapshots go straight there, not through lines
        self.written = 0
        self._lock = threading.Lock()
        ensure(folder)
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.folder / LINK, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, record: RequestRecord) -> None:
        line = record_line(record)
        with self._lock:
            os.write(self._fd, line)
            self.written += 1
            if os.fstat(self._fd).st_size >= self.max_bytes:
                old = current(self.folder)
                rotate(self.folder)
                os.close(self._fd)
                self._fd = self._open()
                if old is not None:
                    seal(self.folder, old)

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        """Engine snapshots do not travel through the journal (the telemetry plane polls the
        engine itself): they go to `snapshots` when given."""
        if self.snapshots is not None:
            self.snapshots.record_snapshot(snapshot)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


@dataclass
class ReaderStats:
    lines: int = 0
    quarantined: int = 0


class JournalReader:
    """Reads records from a position on, across segments; see the module docstring."""

    def __init__(self, folder: Path, start: Position = START, *,
                 settle: float = DEFAULT_SETTLE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.position = start
        self.settle = settle
        self.clock = clock
        self.stats = ReaderStats()
        self._grew: tuple[tuple[Position, int], float] | None = None  # size seen, when
        self._handle: tuple[int, BinaryIO] | None = None

    def _first_segment(self) -> Position:
        """Where to begin when the position names no existing segment: the oldest one
        after it (a consumer that never committed starts at the oldest kept segment)."""
        later = [s for s in segments(self.folder) if s > self.position.segment]
        return Position(later[0], 0) if later else self.position

    def read(self, limit: int = 1000) -> list[tuple[RequestRecord, Position]]:
        """Up to `limit` records after the position, each with the position just after it;
        the reader's position moves past them (and past quarantined lines)."""
        out: list[tuple[RequestRecord, Position]] = []
        while len(out) < limit:
            path = self.folder / segment_name(self.position.segment)
            if not path.exists():
                moved = self._first_segment()
                if moved == self.position:
                    return out
                self.position = moved
                continue
            got = self._read_segment(path, limit - len(out))
            out.extend(got)
            if got:
                continue
            if not self._finished(path):
                return out
            newer = [s for s in segments(self.folder) if s > self.position.segment]
            self.position = Position(newer[0], 0)
        return out

    def _open(self, path: Path) -> BinaryIO:
        """The segment's file, kept open while the reader is in it (a poll per batch)."""
        if self._handle is not None and self._handle[0] == self.position.segment:
            return self._handle[1]
        self.close()
        handle = path.open("rb")
        self._handle = (self.position.segment, handle)
        return handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle[1].close()
            self._handle = None

    def _read_segment(self, path: Path, limit: int) -> list[tuple[RequestRecord, Position]]:
        out: list[tuple[RequestRecord, Position]] = []
        handle = self._open(path)
        handle.seek(self.position.offset)
        offset = self.position.offset
        while len(out) < limit:
            line = handle.readline(MAX_LINE)
            if not line:
                break
            if not line.endswith(b"\n") and len(line) < MAX_LINE:
                break  # the writer has not finished this line yet
            offset += len(line)
            after = Position(self.position.segment, offset)
            self.stats.lines += 1
            record = self._parse(line, after)
            self.position = after
            if record is not None:
                out.append((record, after))
        return out

    def _parse(self, line: bytes, after: Position) -> RequestRecord | None:
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("a journal line must be a JSON object")
            return RequestRecord.from_dict(doc)
        except (ValueError, TypeError, UnicodeDecodeError) as problem:
            self._quarantine(line, after, str(problem))
            return None

    def _quarantine(self, line: bytes, after: Position, reason: str) -> None:
        self.stats.quarantined += 1
        where = f"segment {after.segment}, ending at byte {after.offset}"
        log.warning("journal line quarantined (%s): %s", where, reason)
        entry = {"segment": after.segment, "end": after.offset, "reason": reason,
                 "line": line.decode("utf-8", "replace").rstrip("\n")}
        with (self.folder / QUARANTINE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    def _finished(self, path: Path) -> bool:
        """Whether the segment will not grow: a newer one exists and this one has kept its
        size for `settle` seconds. An unfinished last line in a finished segment (its
        writer stopped mid-line) is quarantined then, so the reader moves on."""
        if not any(s > self.position.segment for s in segments(self.folder)):
            return False
        size = path.stat().st_size
        now = self.clock()
        seen = (self.position, size)
        if (self.folder / _sealed_name(self.position.segment)).exists():
            pass  # every writer has moved on: what is there is all there will be
        elif self._grew is None or self._grew[0] != seen:
            self._grew = (seen, now)
            if self.settle > 0:
                return False
        elif now - self._grew[1] < self.settle:
            return False
        if size > self.position.offset:
            with path.open("rb") as handle:
                handle.seek(self.position.offset)
                tail = handle.read(MAX_LINE)
            if b"\n" in tail:
                return False  # whole lines arrived since the last read: read them first
            after = Position(self.position.segment, size)
            self._quarantine(tail, after, "an unfinished line: its writer stopped mid-line")
            self.position = after
        return True


def prune(folder: Path, positions: Iterable[Position]) -> list[int]:
    """Delete the segments every consumer has passed (older than the oldest position's
    segment), never the current one; returns the deleted sequence numbers."""
    oldest = min(positions, default=None)
    if oldest is None:
        return []
    keep = current(folder)
    gone = []
    for seq in segments(folder):
        if seq < oldest.segment and seq != keep:
            (folder / segment_name(seq)).unlink(missing_ok=True)
            (folder / _sealed_name(seq)).unlink(missing_ok=True)
            gone.append(seq)
    return gone
