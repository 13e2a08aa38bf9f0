"""The hourly ledger roll-ups, kept up to date incrementally from the ledger: per pod-hour
(requests, failures, tokens, busy GPU time, latency bins) and per pod, hour, tenant, feature
and model (requests, tokens, charged work, TTFT and per-gap ITL bins); collectors/usage.py
computes both.

A year of a busy fleet is millions of ledger rows; SQLite scans them at ~1 M rows/s and
Python reads them slower still, so the KPI layer, cost allocation and the page read these
tables instead. `refresh` reads
only rows added since the last refresh (by ledger id) and recomputes every hour those rows
touch, so late rows and overlapping requests are counted exactly once. Busy time is the
union of the pod's requests' engine intervals ([arrival + queue, arrival + e2e)), clipped to
each hour: concurrent requests share the GPU, they do not add up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Float,
    String,
    Table,
    case,
    cast,
    delete,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from collectors import usage
from collectors.store import Store
from collectors.tables import LedgerHour, LedgerRow, LedgerUsage, RollupState
from specs.availability import SERVER_FAILURE_OUTCOMES, THROTTLED_STATUS

NAME = "ledger_hour"
HOUR = 3600.0
# Upper bounds (seconds) of the latency bins; one more bin counts everything above the last.
LATENCY_BOUNDS = usage.LATENCY_BOUNDS
LONGEST_REQUEST = 3600.0  # seconds of a request before its hour that can still overlap it
CHUNK_HOURS = 24 * 30  # recompute at most 30 days at a time
# ...and at most about this many ledger rows (a chunk is never less than one hour): memory
# stays bounded however dense the traffic, on a year of rows or a 1 GB import of one day
CHUNK_ROWS = 100_000
READ_ROWS = 20_000  # rows turned into a DataFrame at a time while a chunk is read
FAILED = SERVER_FAILURE_OUTCOMES  # availability's rule: server-side failures only

Progress = Callable[[str], None]
LEDGER: Table = LedgerRow.__table__  # type: ignore[attr-defined]
HOURS: Table = LedgerHour.__table__  # type: ignore[attr-defined]
USAGE: Table = LedgerUsage.__table__  # type: ignore[attr-defined]
STATE: Table = RollupState.__table__  # type: ignore[attr-defined]


def epoch(column: ColumnElement[Any], dialect: str) -> ColumnElement[float]:
    """Seconds since 1970 computed by the database (parsing millions of timestamps in
    Python costs more than the whole roll-up); to a few microseconds."""
    if dialect == "sqlite":
        return (func.julianday(column) - literal(2440587.5)) * literal(86400.0)
    return cast(func.extract("epoch", column), Float)


def epoch_us(column: ColumnElement[Any], dialect: str) -> ColumnElement[int]:
    """Whole microseconds since 1970, exactly (the sums of collectors/usage.py are integers,
    so the roll-up equals a summary of the same rows in memory). SQLite: SQLAlchemy stores
    'YYYY-MM-DD HH:MM:SS.ffffff'; whole seconds from strftime, microseconds from the text."""
    if dialect == "sqlite":
        # whole seconds from the first 19 characters: strftime rounds a fraction to ms
        text_ = cast(column, String)
        seconds = cast(func.strftime("%s", func.substr(text_, 1, 19)), BigInteger)
        fraction = case((func.substr(text_, 20, 1) == ".",
                         cast(func.substr(text_, 21, 6), BigInteger)), else_=literal(0))
        return seconds * literal(1_000_000) + fraction
    return cast(func.round(func.extract("epoch", column) * literal(1_000_000)), BigInteger)


def server_failures(outcomes: np.ndarray, statuses: np.ndarray,
                    throttled_is_failure: bool = False) -> np.ndarray:
    """Which requests count against availability (engine_shim.records.is_server_failure,
    vectorised): outcome error, and a 429 where the config says so."""
    bad = np.isin(outcomes, SERVER_FAILURE_OUTCOMES)
    if throttled_is_failure:
        bad |= statuses == THROTTLED_STATUS
    return np.asarray(bad, dtype=bool)


def _hour_floor(seconds: float) -> float:
    return float(np.floor(seconds / HOUR) * HOUR)


@dataclass(frozen=True)
class Cursor:
    """Which ledger rows are new to the roll-up, and the watermark it moves to.

    SQLite has one writer at a time and hands out ids inside the writing transaction, so
    ids are in commit order: new = last < id ≤ top (the newest id). PostgreSQL hands out ids
    at insert and commits in any order: a row may become visible after a higher id was
    rolled up. There each row carries the id of the transaction that wrote it (`txid`) and
    the watermark is the snapshot's xmin — every transaction below it has committed or
    aborted, so no row below it can still appear: new = last ≤ txid < top. Rows of
    transactions still open, or committed above the horizon, wait for a later refresh."""

    column: str  # "id" or "txid"
    last: int
    top: int

    def new(self) -> ColumnElement[bool]:
        col = LEDGER.c[self.column]
        if self.column == "id":
            return (col > self.last) & (col <= self.top)
        return (col >= self.last) & (col < self.top)

    def reached(self) -> ColumnElement[bool]:
        """Rows this refresh may read at all: a row past the watermark (committed after the
        cursor was taken) waits for the next refresh, which counts it as new; summed now as
        well, it would be counted twice in an hour kept as a roll-up."""
        col = LEDGER.c[self.column]
        return col <= self.top if self.column == "id" else col < self.top

    def is_new(self, values: pd.Series) -> np.ndarray:
        v = values.to_numpy(dtype="int64")
        if self.column == "id":
            return np.asarray((v > self.last) & (v <= self.top))
        return np.asarray((v >= self.last) & (v < self.top))

    def seen(self, values: pd.Series) -> np.ndarray:
        """Rolled up by an earlier refresh."""
        v = values.to_numpy(dtype="int64")
        return np.asarray(v <= self.last if self.column == "id" else v < self.last)

    @property
    def moved(self) -> bool:
        return self.top > self.last


def cursor(conn: Connection) -> Cursor:
    """Where the roll-up stands and how far it may go now (see Cursor)."""
    last = int(conn.execute(select(STATE.c.last_id).where(STATE.c.name == NAME)).scalar()
               or 0)
    if conn.dialect.name == "postgresql":
        horizon = conn.execute(text(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")).scalar()
        return Cursor("txid", last, int(horizon or 0))
    return Cursor("id", last, int(conn.execute(select(func.max(LEDGER.c.id))).scalar() or 0))


def pending(store: Store) -> int:
    """Ledger rows the roll-up has not seen yet (read-only: readers say so, `refresh` acts);
    on PostgreSQL also those of transactions too recent to roll up yet."""
    with store.engine.connect() as conn:
        at = cursor(conn)
        col = LEDGER.c[at.column]
        seen = col <= at.last if at.column == "id" else col < at.last
        return int(conn.execute(select(func.count()).where(~seen)).scalar() or 0)


def refresh(store: Store, progress: Progress | None = None) -> int:
    """Roll up ledger rows added since the last refresh; returns how many were new."""
    with store.engine.connect() as conn:
        at = cursor(conn)
        top = at.top
        if not at.moved:
            return 0
        dialect = conn.dialect.name
        new_rows = at.new()
        fresh = int(conn.execute(select(func.count()).where(new_rows)).scalar() or 0)
        if not fresh:  # nothing new below the horizon: the watermark may stay where it is
            return 0
        spans = conn.execute(
            select(LEDGER.c.pod, func.min(epoch(LEDGER.c.arrival, dialect)),
                   func.max(epoch(LEDGER.c.finish, dialect)))
            .where(new_rows).group_by(LEDGER.c.pod)).all()
    # one transaction per chunk keeps the database's write lock short while live writers
    # wait; recomputing an hour is idempotent, so the watermark moves only after all chunks
    for pod, first, final in spans:
        start, end = _hour_floor(first), _hour_floor(final) + HOUR
        with store.engine.connect() as conn:
            chunks = _chunks(conn, dialect, pod, start, end)
        for chunk, stop in chunks:
            with store.engine.begin() as conn:
                _recompute(conn, dialect, pod, chunk, stop, at)
            if progress:
                progress(f"roll-up {pod or '(no pod)'}: {_iso(chunk)[:10]}")
    with store.engine.begin() as conn:
        if _last_in(conn) is None:
            conn.execute(STATE.insert().values(name=NAME, last_id=top))
        else:
            conn.execute(STATE.update().where(STATE.c.name == NAME).values(last_id=top))
    return fresh


def _chunks(conn: Connection, dialect: str, pod: str, start: float,
            end: float) -> list[tuple[float, float]]:
    """[start, end) cut into runs of whole hours holding at most CHUNK_ROWS ledger rows of
    the pod (one hour alone may hold more) and at most CHUNK_HOURS hours."""
    seconds = epoch(LEDGER.c.arrival, dialect) / literal(HOUR)
    hour = cast(seconds, BigInteger) if dialect == "sqlite" else func.floor(seconds)
    counts = {int(h): int(n) for h, n in conn.execute(
        select(hour, func.count()).where(
            LEDGER.c.pod == pod,
            LEDGER.c.arrival >= datetime.fromtimestamp(start - LONGEST_REQUEST, UTC),
            LEDGER.c.arrival < datetime.fromtimestamp(end, UTC)).group_by(hour)).all()}
    chunks, chunk, rows, moment = [], start, 0, start
    while moment < end:
        # an hour's recompute also reads the hour before it (requests that reach into it)
        here = counts.get(int(moment // HOUR), 0)
        if moment > chunk and (rows + here > CHUNK_ROWS
                               or moment - chunk >= CHUNK_HOURS * HOUR):
            chunks.append((chunk, moment))
            chunk, rows = moment, counts.get(int(moment // HOUR) - 1, 0)
        rows += here
        moment += HOUR
    chunks.append((chunk, end))
    return chunks


def _read(conn: Connection, query: Any, columns: list[str]) -> pd.DataFrame:
    """A query's rows as one DataFrame, built READ_ROWS at a time: a list of row objects for
    the whole chunk would take ten times the frame's memory."""
    parts = [pd.DataFrame(part, columns=columns)
             for part in conn.execute(query).partitions(READ_ROWS)]
    if not parts:
        return pd.DataFrame(columns=columns)
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _recompute(conn: Connection, dialect: str, pod: str, start: float, end: float,
               at: Cursor) -> None:
    """Rebuild the pod's hours in [start, end) of both roll-ups from every ledger row that
    can touch them (collectors/usage.py does the sums). An hour whose roll-up counts more
    requests than the ledger holds raw for it (its raw rows aged out, or it was loaded as a
    roll-up) is never rebuilt from the few rows left: the new rows are added to it."""
    lo = datetime.fromtimestamp(start - LONGEST_REQUEST, UTC)
    hi = datetime.fromtimestamp(end, UTC)
    c = LEDGER.c
    names = [name for name in usage.RAW if name != "arrival_us"]
    query = select(func.coalesce(c[at.column], 0).label("id"),
                   epoch_us(c.arrival, dialect).label("arrival_us"),
                   *(getattr(c, name) for name in names)).where(
        c.pod == pod, c.arrival >= lo, c.arrival < hi, at.reached())
    raw = _read(conn, query, ["id", "arrival_us", *names])
    hours = round((end - start) / HOUR)
    aged = _aged_hours(conn, pod, start, end, raw, at)
    if raw.empty:
        replace_hours(conn, [pod], start, end, None, None, keep=aged)
        return
    raw["arrival_us"] = raw["arrival_us"].astype("int64")
    pod_hours, usage_rows = usage.summarise(raw.drop(columns=["id"]), int(start) * usage.US,
                                            hours)
    if not aged:
        replace_hours(conn, [pod], start, end, pod_hours, usage_rows)
        return
    stamps = {_stamp(h) for h in aged}
    replace_hours(conn, [pod], start, end, pod_hours[~pod_hours["hour"].isin(stamps)],
                  usage_rows[~usage_rows["hour"].isin(stamps)], keep=aged)
    added = raw[at.is_new(raw["id"])]
    added_hours, added_usage = usage.summarise(added.drop(columns=["id"]),
                                               int(start) * usage.US, hours)
    _add_to(conn, pod, stamps, added_hours[added_hours["hour"].isin(stamps)],
            added_usage[added_usage["hour"].isin(stamps)])


BIN_WIDTH = max(len(usage.LATENCY_BOUNDS), len(usage.TTFT_BOUNDS), len(usage.ITL_BOUNDS)) + 1


def _bin_sum(texts: pd.Series) -> str:
    return usage.encode(usage.decode(texts, BIN_WIDTH).sum(axis=0))


def _stamp(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def _aged_hours(conn: Connection, pod: str, start: float, end: float, raw: pd.DataFrame,
                at: Cursor) -> set[float]:
    """Hours (epoch seconds) whose stored roll-up counts more requests than the raw rows
    rolled up before (Cursor.seen) that arrived in them."""
    counted = (HOURS.c.requests + HOURS.c.prefills).label("counted")
    stored = conn.execute(select(HOURS.c.hour, counted).where(
        HOURS.c.pod == pod, HOURS.c.hour >= datetime.fromtimestamp(start, UTC),
        HOURS.c.hour < datetime.fromtimestamp(end, UTC), counted > 0)).all()
    if not stored:
        return set()
    old = raw[at.seen(raw["id"])]
    slots = (old["arrival_us"].astype("int64") // usage.HOUR_US).value_counts()
    aged = set()
    for hour, requests in stored:
        stamp = pd.Timestamp(hour)
        seconds = (stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp).timestamp()
        if requests > int(slots.get(int(seconds) * usage.US // usage.HOUR_US, 0)):
            aged.add(seconds)
    return aged


def _add_to(conn: Connection, pod: str, stamps: set[pd.Timestamp], pod_hours: pd.DataFrame,
            usage_rows: pd.DataFrame) -> None:
    """Add new rows' sums to hours kept as a roll-up: counts, tokens, work and bins add up;
    busy time is added, at most the hour (late rows may overlap requests no longer raw)."""
    for table, frame, keys in ((HOURS, pod_hours, ["pod", "hour"]),
                               (USAGE, usage_rows, list(usage.KEYS))):
        if frame.empty:
            continue
        stored = pd.DataFrame(conn.execute(select(table).where(
            table.c.pod == pod, table.c.hour.in_([s.to_pydatetime() for s in stamps]))).all(),
            columns=[col.name for col in table.c])
        if not stored.empty:
            stored["hour"] = pd.to_datetime(stored["hour"], utc=True)
        both = pd.concat([stored, frame], ignore_index=True)
        bins = [name for name in both.columns if name.endswith("_counts")]
        texts = [name for name in both.columns if name == "role"]
        sums = [name for name in both.columns
                if name not in keys and name not in bins and name not in texts]
        merged = both.groupby(keys, sort=True)[sums].sum().reset_index()
        for name in texts:  # the hour's role: the greatest name, as usage._hour_roles
            merged[name] = both.groupby(keys, sort=True)[name].max().to_numpy()
        for name in bins:
            merged[name] = both.groupby(keys, sort=True)[name].agg(_bin_sum).to_numpy()
        if "busy_seconds" in merged:
            merged["busy_seconds"] = merged["busy_seconds"].clip(upper=HOUR)
        conn.execute(delete(table).where(
            table.c.pod == pod, table.c.hour.in_([s.to_pydatetime() for s in stamps])))
        records = [{str(k): v for k, v in r.items()} for r in merged.to_dict("records")]
        for record in records:
            record["hour"] = record["hour"].to_pydatetime()
        conn.execute(table.insert(), records)


def replace_hours(conn: Connection, pods: list[str], start: float, end: float,
                  pod_hours: pd.DataFrame | None, usage_rows: pd.DataFrame | None,
                  keep: set[float] | None = None) -> None:
    """The pods' hours in [start, end) (epoch seconds) of both roll-ups become these rows
    (collectors/usage.py's shape), except the `keep` hours, left as they are. A loader that
    summarised its own rows writes them here and then calls `mark_current`, so they are not
    read back and summed again."""
    lo, hi = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)
    kept = [datetime.fromtimestamp(h, UTC) for h in sorted(keep or ())]
    for table in (HOURS, USAGE):
        where = (table.c.pod.in_(pods), table.c.hour >= lo, table.c.hour < hi)
        conn.execute(delete(table).where(*where, table.c.hour.not_in(kept))
                     if kept else delete(table).where(*where))
    for table, frame in ((HOURS, pod_hours), (USAGE, usage_rows)):
        if frame is not None and not frame.empty:
            records = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
            for record in records:
                record["hour"] = record["hour"].to_pydatetime()
            conn.execute(table.insert(), records)


def top_id(store: Store) -> int:
    """The newest ledger row's id (0 for an empty ledger)."""
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.max(LEDGER.c.id))).scalar() or 0)


def mark_current(store: Store, since: int) -> None:
    """Record the ledger rows stored after id `since` as rolled up: the loader that wrote
    them wrote their roll-up too (replace_hours). Refused when rows up to `since` still wait
    for a refresh: they would never be summed."""
    with store.engine.begin() as conn:
        last = _last_in(conn)
        at = cursor(conn)
        if since and at.column == "id":
            stale = (last or 0) < since
        elif since:  # PostgreSQL: rows up to the load's first id not rolled up yet
            stale = bool(conn.execute(select(func.count()).where(
                LEDGER.c.id <= since, func.coalesce(LEDGER.c.txid, 0) >= (last or 0))
            ).scalar())
        else:
            stale = False
        if stale:
            raise ValueError("ledger rows older than this load wait for the roll-up:"
                             " refresh first")
        top = at.top
        if last is not None and not conn.execute(select(func.count()).where(at.new())
                                                 ).scalar():
            return  # nothing new since the last refresh: the watermark stays
        if last is None:
            conn.execute(STATE.insert().values(name=NAME, last_id=top))
        else:
            conn.execute(STATE.update().where(STATE.c.name == NAME).values(last_id=top))


def _last_in(conn: Connection) -> int | None:
    value = conn.execute(select(STATE.c.last_id).where(STATE.c.name == NAME)).scalar()
    return None if value is None else int(value)
