"""The durable outbox: product events on disk (SQLite, WAL) until Mixpanel accepted them.

An event is committed before `add` returns, and deleted only after Mixpanel answered for it.
WAL with synchronous=NORMAL survives the process being killed at any instant (what the tests
check); an operating-system crash may lose the last commits. The outbox is bounded: past
`max_events` a new event is dropped and counted, never silently.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    insert_id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (state, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS journal_offset (
    consumer TEXT PRIMARY KEY,
    segment INTEGER NOT NULL,
    "offset" INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Pending:
    seq: int
    insert_id: str
    body: str
    size: int


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    quarantined: int
    dropped: int
    sent: int
    send_failures: int = 0  # batches tried without a settling answer (sent again later)


class Outbox:
    """One SQLite file; each thread gets its own connection (WAL lets them work together)."""

    def __init__(self, path: Path, *, max_events: int = 1_000_000) -> None:
        self.path = path
        self.max_events = max_events
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._db().executescript(SCHEMA)
        self._count = self._pending_and_quarantined()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def _pending_and_quarantined(self) -> int:
        return int(self._db().execute("SELECT count(*) FROM outbox").fetchone()[0])

    def add(self, insert_id: str, event: str, body: str) -> bool:
        """Commit one event; False when the outbox is full (the drop is counted)."""
        db = self._db()
        with self._lock:
            if self._count >= self.max_events:
                self._count = self._pending_and_quarantined()  # the sender may have drained it
                if self._count >= self.max_events:
                    self._bump(db, "dropped", 1)
                    return False
            cursor = db.execute(
                "INSERT OR IGNORE INTO outbox (insert_id, event, body, size, created)"
                " VALUES (?, ?, ?, ?, ?)", (insert_id, event, body, len(body), time.time()))
            self._count += cursor.rowcount
        return True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything added inside (and `set_position`) commits together or not at all."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            with self._lock:
                self._count = self._pending_and_quarantined()
            raise
        db.execute("COMMIT")

    def position(self, consumer: str) -> tuple[int, int]:
        """Where a journal consumer feeding this outbox committed last ((0, 0): never)."""
        row = self._db().execute('SELECT segment, "offset" FROM journal_offset'
                                 " WHERE consumer = ?", (consumer,)).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def set_position(self, consumer: str, end: tuple[int, int]) -> None:
        """Inside `transaction`: the journal position after the events just added."""
        self._db().execute('INSERT INTO journal_offset (consumer, segment, "offset")'
                           " VALUES (?, ?, ?) ON CONFLICT(consumer) DO UPDATE SET"
                           ' segment = excluded.segment, "offset" = excluded."offset"',
                           (consumer, end[0], end[1]))

    def take(self, max_events: int, max_bytes: int) -> list[Pending]:
        """The oldest pending events that fit in one request."""
        rows = self._db().execute(
            "SELECT seq, insert_id, body, size FROM outbox WHERE state = 'pending'"
            " ORDER BY seq LIMIT ?", (max_events,)).fetchall()
        batch: list[Pending] = []
        total = 2  # the enclosing brackets
        for seq, insert_id, body, size in rows:
            if batch and total + size + 1 > max_bytes:
                break
            batch.append(Pending(seq, insert_id, body, size))
            total += size + 1
        return batch

    def accepted(self, seqs: list[int]) -> None:
        db = self._db()
        db.execute("BEGIN")
        db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
        self._bump(db, "sent", len(seqs))
        db.execute("COMMIT")
        with self._lock:
            self._count -= len(seqs)

    def quarantine(self, rejected: dict[int, str]) -> None:
        """Keep events Mixpanel refused, with its reason, out of the sending queue."""
        db = self._db()
        db.execute("BEGIN")
        db.executemany("UPDATE outbox SET state = 'quarantined', reason = ? WHERE seq = ?",
                       [(reason, seq) for seq, reason in rejected.items()])
        db.execute("COMMIT")

    def attempted(self, seqs: list[int]) -> None:
        self._db().executemany("UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?",
                               [(s,) for s in seqs])

    def count_send_failure(self) -> None:
        self._bump(self._db(), "send_failures", 1)

    def quarantined(self) -> list[tuple[str, str, str]]:
        """(insert_id, event, reason) of every quarantined event."""
        rows = self._db().execute("SELECT insert_id, event, reason FROM outbox"
                                  " WHERE state = 'quarantined' ORDER BY seq").fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    def events(self) -> list[str]:
        """Every event still held (the local event log when no Mixpanel is configured)."""
        rows = self._db().execute("SELECT body FROM outbox ORDER BY seq").fetchall()
        return [str(r[0]) for r in rows]

    def stats(self) -> OutboxStats:
        db = self._db()
        by_state = dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state"))
        counters = dict(db.execute("SELECT name, value FROM counters"))
        return OutboxStats(pending=int(by_state.get("pending", 0)),
                           quarantined=int(by_state.get("quarantined", 0)),
                           dropped=int(counters.get("dropped", 0)),
                           sent=int(counters.get("sent", 0)),
                           send_failures=int(counters.get("send_failures", 0)))

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str, amount: int) -> None:
        db.execute("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name)"
                   " DO UPDATE SET value = value + excluded.value", (name, amount))

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
