"""The hourly ledger roll-up: requests, failures, tokens, busy GPU time and latency counts per
pod and hour, kept up to date incrementally from the ledger.

A year of a busy fleet is millions of ledger rows; SQLite scans them at ~1 M rows/s and
Python reads them slower still, so the KPI layer reads this table instead. `refresh` reads
only rows added since the last refresh (by ledger id) and recomputes every hour those rows
touch, so late rows and overlapping requests are counted exactly once. Busy time is the
union of the pod's requests' engine intervals ([arrival + queue, arrival + e2e)), clipped to
each hour: concurrent requests share the GPU, they do not add up.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Float, Table, cast, delete, func, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from collectors.store import Store
from collectors.tables import LedgerHour, LedgerRow, RollupState
from specs.availability import SERVER_FAILURE_OUTCOMES, THROTTLED_STATUS
from specs.catalog import LEDGER_LATENCY_BUCKETS

NAME = "ledger_hour"
HOUR = 3600.0
# Upper bounds (seconds) of the latency bins; one more bin counts everything above the last.
LATENCY_BOUNDS = LEDGER_LATENCY_BUCKETS.bounds
LONGEST_REQUEST = 3600.0  # seconds of a request before its hour that can still overlap it
CHUNK_HOURS = 24 * 30  # recompute 30 days at a time: bounded memory on a year of rows
FAILED = SERVER_FAILURE_OUTCOMES  # availability's rule: server-side failures only

Progress = Callable[[str], None]
LEDGER: Table = LedgerRow.__table__  # type: ignore[attr-defined]
HOURS: Table = LedgerHour.__table__  # type: ignore[attr-defined]
STATE: Table = RollupState.__table__  # type: ignore[attr-defined]


def epoch(column: ColumnElement[Any], dialect: str) -> ColumnElement[float]:
    """Seconds since 1970 computed by the database (parsing millions of timestamps in
    Python costs more than the whole roll-up)."""
    if dialect == "sqlite":
        return (func.julianday(column) - literal(2440587.5)) * literal(86400.0)
    return cast(func.extract("epoch", column), Float)


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


def pending(store: Store) -> int:
    """Ledger rows the roll-up has not seen yet (read-only: readers say so, `refresh` acts)."""
    with store.engine.connect() as conn:
        last = conn.execute(select(STATE.c.last_id).where(STATE.c.name == NAME)).scalar() or 0
        return int(conn.execute(select(func.count()).where(LEDGER.c.id > last)).scalar() or 0)


def refresh(store: Store, progress: Progress | None = None) -> int:
    """Roll up ledger rows added since the last refresh; returns how many were new."""
    with store.engine.connect() as conn:
        last = conn.execute(select(STATE.c.last_id).where(STATE.c.name == NAME)).scalar() or 0
        top = conn.execute(select(func.max(LEDGER.c.id))).scalar() or 0
        if top <= last:
            return 0
        dialect = conn.dialect.name
        new_rows = (LEDGER.c.id > last) & (LEDGER.c.id <= top)
        fresh = int(conn.execute(select(func.count()).where(new_rows)).scalar() or 0)
        spans = conn.execute(
            select(LEDGER.c.pod, func.min(epoch(LEDGER.c.arrival, dialect)),
                   func.max(epoch(LEDGER.c.finish, dialect)))
            .where(new_rows).group_by(LEDGER.c.pod)).all()
    # one transaction per chunk keeps the database's write lock short while live writers
    # wait; recomputing an hour is idempotent, so the watermark moves only after all chunks
    for pod, first, final in spans:
        start, end = _hour_floor(first), _hour_floor(final) + HOUR
        chunk = start
        while chunk < end:
            stop = min(end, chunk + CHUNK_HOURS * HOUR)
            with store.engine.begin() as conn:
                _recompute(conn, dialect, pod, chunk, stop)
            if progress:
                progress(f"roll-up {pod or '(no pod)'}: {_iso(chunk)[:10]}")
            chunk = stop
    with store.engine.begin() as conn:
        if last:
            conn.execute(STATE.update().where(STATE.c.name == NAME).values(last_id=top))
        else:
            conn.execute(STATE.insert().values(name=NAME, last_id=top))
    return fresh


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _recompute(conn: Connection, dialect: str, pod: str, start: float, end: float) -> None:
    """Rebuild the pod's hours in [start, end) from every ledger row that can touch them."""
    lo = datetime.fromtimestamp(start - LONGEST_REQUEST, UTC)
    hi = datetime.fromtimestamp(end, UTC)
    c = LEDGER.c
    rows = conn.execute(
        select(epoch(c.arrival, dialect), c.outcome, c.queue_time, c.e2e_latency,
               c.time_to_first_token, c.prompt_tokens, c.output_tokens, c.http_status)
        .where(c.pod == pod, c.arrival >= lo, c.arrival < hi)).all()
    conn.execute(delete(HOURS).where(
        HOURS.c.pod == pod, HOURS.c.hour >= datetime.fromtimestamp(start, UTC),
        HOURS.c.hour < hi))
    if not rows:
        return
    columns = list(zip(*rows, strict=True))
    when = np.asarray(columns[0], dtype="float64")
    failed = np.isin(np.asarray(columns[1], dtype=object), FAILED)
    ok = np.asarray(columns[1], dtype=object) == "ok"
    cancelled = np.asarray(columns[1], dtype=object) == "cancelled"
    throttled = np.asarray(columns[7], dtype=object) == THROTTLED_STATUS

    def floats(values: tuple[object, ...]) -> np.ndarray:
        return np.array(values, dtype="float64")  # None becomes NaN

    queue = np.nan_to_num(floats(columns[2]))
    e2e = np.nan_to_num(floats(columns[3]))
    ttft = floats(columns[4])
    prompt = np.nan_to_num(floats(columns[5]))
    output = np.nan_to_num(floats(columns[6]))
    hours = round((end - start) / HOUR)
    busy = _busy_by_hour(when + queue, when + e2e, start, hours)
    inside = (when >= start) & (when < end)
    slot = ((when[inside] - start) // HOUR).astype(np.int64)
    bins = len(LATENCY_BOUNDS) + 1

    def per_hour(values: np.ndarray) -> np.ndarray:
        return np.bincount(slot, weights=values, minlength=hours)[:hours]

    def counts(values: np.ndarray) -> np.ndarray:
        known = ~np.isnan(values)
        index = slot[known] * bins + np.searchsorted(LATENCY_BOUNDS, values[known], side="left")
        return np.bincount(index, minlength=hours * bins)[:hours * bins].reshape(hours, bins)

    requests = np.bincount(slot, minlength=hours)[:hours]
    oks, fails = per_hour(ok[inside].astype(float)), per_hour(failed[inside].astype(float))
    throttles = per_hour(throttled[inside].astype(float))
    cancels = per_hour(cancelled[inside].astype(float))
    tokens_in, tokens_out = per_hour(prompt[inside]), per_hour(output[inside])
    ttft_counts, e2e_counts = counts(ttft[inside]), counts(e2e[inside])
    out = []
    for h in np.flatnonzero((requests > 0) | (busy > 0)):
        out.append({"pod": pod, "hour": datetime.fromtimestamp(start + h * HOUR, UTC),
                    "requests": int(requests[h]), "ok": int(oks[h]), "failed": int(fails[h]),
                    "throttled": int(throttles[h]), "cancelled": int(cancels[h]),
                    "input_tokens": int(tokens_in[h]), "output_tokens": int(tokens_out[h]),
                    "busy_seconds": float(busy[h]),
                    "ttft_counts": json.dumps(ttft_counts[h].tolist()),
                    "e2e_counts": json.dumps(e2e_counts[h].tolist())})
    if out:
        conn.execute(HOURS.insert(), out)


def union_blocks(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of [start, end) intervals as sorted disjoint blocks (a sorted sweep):
    concurrent requests occupy the engine once. Empty intervals are left out."""
    keep = ends > starts
    if not keep.any():
        return np.zeros(0), np.zeros(0)
    order = np.argsort(starts[keep], kind="stable")
    s, e = starts[keep][order], ends[keep][order]
    reach = np.maximum.accumulate(e)
    new_block = np.empty(len(s), dtype=bool)
    new_block[0] = True
    new_block[1:] = s[1:] > reach[:-1]
    return s[new_block], np.maximum.reduceat(e, np.flatnonzero(new_block))


def _busy_by_hour(starts: np.ndarray, ends: np.ndarray, origin: float,
                  hours: int) -> np.ndarray:
    """Seconds of the union of [start, end) intervals falling in each hour from origin."""
    busy = np.zeros(hours)
    block_start, block_end = union_blocks(starts, ends)
    if not len(block_start):
        return busy
    block_start, block_end = block_start - origin, block_end - origin
    block_start = np.clip(block_start, 0, hours * HOUR)
    block_end = np.clip(block_end, 0, hours * HOUR)
    first = np.minimum((block_start // HOUR).astype(np.int64), hours - 1)
    last = np.minimum(((block_end - 1e-9) // HOUR).astype(np.int64), hours - 1)
    same = (first == last) & (block_end > block_start)
    np.add.at(busy, first[same], block_end[same] - block_start[same])
    for a, b in zip(block_start[~same], block_end[~same], strict=True):  # crossing hours: rare
        at = float(a)
        while b > at and int(at // HOUR) < hours:
            edge = min(float(b), (int(at // HOUR) + 1) * HOUR)
            busy[int(at // HOUR)] += edge - at
            at = edge
    return busy

