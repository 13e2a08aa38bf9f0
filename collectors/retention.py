"""Raw ledger retention: keep the last `keep_days` days of request rows; the hourly roll-ups
(collectors/rollup.py) are kept for good, so every report still answers for older periods.

On PostgreSQL the ledger is partitioned by day of arrival (migration 0012): a day past
retention goes by dropping its partition (no vacuum, no bloat), and the days ahead are made
in advance so writers never wait; a row for a day without a partition lands in the default
partition and moves into its own when that day is made. SQLite deletes the old rows.

Nothing is lost: the roll-up is refreshed first, and a day is dropped only when every row
of it is rolled up (a row still in an open transaction, or past the roll-up's horizon,
holds retention back until a later run). A request that arrives late for a day already
dropped is still summed: the roll-up adds it to the kept hour (rollup._aged_hours).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from collectors import rollup
from collectors.store import Store

DEFAULT_PARTITION = "ledger_default"
AHEAD_DAYS = 7  # partitions made for today and the days after it
PARTITION = re.compile(r"ledger_p(\d{8})")
REFRESH_TRIES = 3


class RetentionError(RuntimeError):
    """Old rows cannot go yet (they wait for the roll-up); nothing was dropped."""


@dataclass(frozen=True)
class Outcome:
    cutoff: date  # rows that arrived before this day are gone
    rows_removed: int
    days_dropped: list[date]  # partitions dropped (PostgreSQL)
    partitions_until: date | None  # the last day with its partition (PostgreSQL)
    days_held: list[date]  # old days kept: rows written since the refresh (a later run)


def partition_name(day: date) -> str:
    return f"ledger_p{day:%Y%m%d}"


def is_partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('ledger')")
                        ).scalar()
    return str(kind) == "p"


def partitions(conn: Connection) -> dict[date, str]:
    """The ledger's day partitions (the default one apart)."""
    names = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass('ledger')")).scalars()
    found = {}
    for name in names:
        match = PARTITION.fullmatch(str(name))
        if match:
            found[datetime.strptime(match.group(1), "%Y%m%d").date()] = str(name)
    return found


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def ensure_days(conn: Connection, days: Iterable[date]) -> list[date]:
    """Make the partitions of these days that do not exist yet; rows of such a day already
    in the default partition move into it. Returns the days made."""
    existing = partitions(conn)
    made = []
    for day in sorted(set(days) - set(existing)):
        lo, hi = _start(day), _start(day + timedelta(days=1))
        conn.execute(text("CREATE TEMPORARY TABLE llmkpi_moving (LIKE ledger) ON COMMIT DROP"))
        conn.execute(text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE arrival >= :lo"
            " AND arrival < :hi RETURNING *) INSERT INTO llmkpi_moving SELECT * FROM moved"),
            {"lo": lo, "hi": hi})
        conn.execute(text(f"CREATE TABLE {partition_name(day)} PARTITION OF ledger FOR VALUES"
                          f" FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"))
        conn.execute(text("INSERT INTO ledger SELECT * FROM llmkpi_moving"))
        conn.execute(text("DROP TABLE llmkpi_moving"))
        made.append(day)
    return made


def _seen(conn: Connection) -> ColumnElement[bool]:
    """Rows the roll-up has summed (rollup.Cursor.seen, as a clause)."""
    at = rollup.cursor(conn)
    column = rollup.LEDGER.c[at.column]
    return column <= at.last if at.column == "id" else column < at.last


def _waiting_before(conn: Connection, cutoff: date) -> int:
    """Rows that arrived before `cutoff` and are not rolled up yet."""
    return int(conn.execute(select(func.count()).where(
        rollup.LEDGER.c.arrival < _start(cutoff), ~_seen(conn))).scalar() or 0)


def apply(store: Store, keep_days: int, today: date | None = None,
          progress: Callable[[str], None] | None = None) -> Outcome:
    """Remove raw rows that arrived more than `keep_days` whole days before `today` (UTC),
    after rolling them up; on PostgreSQL also make the partitions of the days ahead."""
    if keep_days < 1:
        raise ValueError(f"--keep-days must be at least 1, not {keep_days}")
    today = today or datetime.now(UTC).date()
    cutoff = today - timedelta(days=keep_days)
    for _ in range(REFRESH_TRIES):
        rollup.refresh(store, progress)
        with store.engine.connect() as conn:
            waiting = _waiting_before(conn, cutoff)
        if not waiting:
            break
    else:
        raise RetentionError(f"{waiting} rows older than {cutoff} are not rolled up yet"
                             " (a transaction still open?): nothing removed; run again")
    with store.engine.begin() as conn:
        if not is_partitioned(conn):
            # only rows rolled up: one written since the check above waits for the next run
            removed = conn.execute(rollup.LEDGER.delete().where(
                rollup.LEDGER.c.arrival < _start(cutoff), _seen(conn))).rowcount
            return Outcome(cutoff, int(removed or 0), [], None, [])
        ahead = [today + timedelta(days=n) for n in range(AHEAD_DAYS + 1)]
        # kept days whose rows sit in the default partition get their own partition too
        strays = conn.execute(text(
            f"SELECT DISTINCT (date_trunc('day', arrival AT TIME ZONE 'UTC'))::date FROM"
            f" {DEFAULT_PARTITION} WHERE arrival >= :cutoff"), {"cutoff": _start(cutoff)}
        ).scalars()
        ensure_days(conn, [*ahead, *strays])
        dropped, held, removed = [], [], 0
        for day, name in sorted(partitions(conn).items()):
            if day >= cutoff:
                continue
            # the lock waits for writers still in the day; then every row is final
            conn.execute(text(f"LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"))
            last = rollup.cursor(conn).last  # PostgreSQL: the transaction-id horizon
            unseen = conn.execute(text(f"SELECT count(*) FROM {name}"
                                       " WHERE coalesce(txid, 0) >= :last"), {"last": last}
                                  ).scalar()
            if unseen:  # written since the refresh: kept until a later run sums them
                held.append(day)
                continue
            removed += int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() or 0)
            conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(day)
        # rows of old days in the default partition (summed ones: the rest wait)
        removed += int(conn.execute(text(
            f"DELETE FROM {DEFAULT_PARTITION} WHERE arrival < :cutoff"
            " AND coalesce(txid, 0) < :last"),
            {"cutoff": _start(cutoff), "last": rollup.cursor(conn).last}).rowcount or 0)
        return Outcome(cutoff, removed, dropped, ahead[-1], held)
