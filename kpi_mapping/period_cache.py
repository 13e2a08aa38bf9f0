"""Each closed period's 19 KPI pairs kept in the store, so a report or a page view reads a
year of history instead of recomputing it (418 formula calls for a month view).

An entry is used only while what it was computed from is unchanged: no import since (the
newest import_log id), the same number of requests rolled up in the period (a late ledger
row or a loader's rewrite changes it), the same KPI config and the same formula code (a
hash of kpi_mapping's sources, so an upgrade recomputes). A period still running is never
kept. The entries are derived data: deleting the table's rows only costs time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Table, delete, func, inspect, select
from sqlalchemy.exc import IntegrityError, OperationalError

from collectors.store import Store
from collectors.tables import ImportLog, KpiPeriodCache, LedgerHour
from kpi_mapping.config import KpiConfig
from kpi_mapping.periods import Period
from kpi_mapping.values import Value

Pairs = dict[int, tuple[Value, Value]]
CACHE: Table = KpiPeriodCache.__table__  # type: ignore[attr-defined]
HOURS: Table = LedgerHour.__table__  # type: ignore[attr-defined]
IMPORTS: Table = ImportLog.__table__  # type: ignore[attr-defined]
_PACKAGE = Path(__file__).resolve().parent
LOG = logging.getLogger(__name__)


def _code_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted([*_PACKAGE.glob("*.py"), *_PACKAGE.glob("formulas/*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


CODE = _code_hash()


def key(config: KpiConfig) -> str:
    return hashlib.sha256(f"{CODE}|{config!r}".encode()).hexdigest()[:64]


def closed(period: Period, now: datetime | None = None) -> bool:
    return period.end <= (now or datetime.now(UTC))


def _clean(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _encode(pairs: Pairs) -> str:
    def one(v: Value) -> dict[str, Any]:
        return {"value": _clean(v.value), "missing": v.missing, "note": v.note,
                "band": v.band, "detail": {k: _clean(x) for k, x in v.detail.items()}}
    return json.dumps({str(k): [one(a), one(b)] for k, (a, b) in pairs.items()},
                      sort_keys=True)


def _decode(text: str) -> Pairs:
    def one(doc: dict[str, Any]) -> Value:
        return Value(doc["value"], doc["missing"], doc["note"], doc["band"], doc["detail"])
    return {int(k): (one(a), one(b)) for k, (a, b) in json.loads(text).items()}


def _available(store: Store) -> bool:
    """An older store (before migration 0006) has no cache: reports just compute."""
    return bool(inspect(store.engine).has_table("kpi_period_cache"))


def _state(store: Store, periods: Sequence[Period]) -> tuple[int, list[int]]:
    with store.engine.connect() as conn:
        newest = int(conn.execute(select(func.max(IMPORTS.c.id))).scalar() or 0)
        rolled = [int(conn.execute(select(func.coalesce(func.sum(HOURS.c.requests), 0)).where(
            HOURS.c.hour >= p.start, HOURS.c.hour < p.end)).scalar() or 0) for p in periods]
    return newest, rolled


def lookup(store: Store, periods: Sequence[Period], config: KpiConfig
           ) -> dict[datetime, Pairs]:
    """The still-valid KPI entries among these periods, by period start."""
    found = lookup_texts(store, "kpi", periods, key(config))
    return {start: _decode(text) for start, text in found.items()}


def keep(store: Store, computed: dict[Period, Pairs], config: KpiConfig) -> int:
    """Store the closed periods' KPI pairs; returns how many were kept."""
    return keep_texts(store, "kpi", {p: _encode(v) for p, v in computed.items()}, key(config))


def _kind(namespace: str, period: Period) -> str:
    return period.kind if namespace == "kpi" else f"{namespace}:{period.kind}"


def lookup_texts(store: Store, namespace: str, periods: Sequence[Period], cache_key: str
                 ) -> dict[datetime, str]:
    """The still-valid entries of a namespace (kpi, cost, ...) among these periods."""
    if not periods or not _available(store):
        return {}
    newest, rolled = _state(store, periods)
    wanted = {p.start: r for p, r in zip(periods, rolled, strict=True)}
    with store.engine.connect() as conn:
        rows = conn.execute(select(CACHE.c.start, CACHE.c.import_id, CACHE.c.requests,
                                   CACHE.c.pairs).where(
            CACHE.c.kind == _kind(namespace, periods[0]), CACHE.c.key == cache_key,
            CACHE.c.start.in_(list(wanted)))).all()
    out = {}
    for start, import_id, requests, text in rows:
        stamp = start if start.tzinfo else start.replace(tzinfo=UTC)
        if import_id == newest and requests == wanted.get(stamp):
            out[stamp] = str(text)
    return out


def keep_texts(store: Store, namespace: str, computed: dict[Period, str], cache_key: str
               ) -> int:
    """Store the closed periods among these; returns how many were kept."""
    done = [p for p in computed if closed(p)]
    if not done or not _available(store):
        return 0
    newest, rolled = _state(store, done)
    now = datetime.now(UTC)
    try:
        with store.engine.begin() as conn:
            for period, requests in zip(done, rolled, strict=True):
                kind = _kind(namespace, period)
                conn.execute(delete(CACHE).where(CACHE.c.kind == kind,
                                                 CACHE.c.start == period.start,
                                                 CACHE.c.key == cache_key))
                conn.execute(CACHE.insert().values(
                    kind=kind, start=period.start, key=cache_key, computed=now,
                    import_id=newest, requests=requests, pairs=computed[period]))
    except (IntegrityError, OperationalError) as problem:  # another reader kept them first,
        LOG.info("period cache not written: %s", problem)  # or the store is busy: compute
        return 0                                             # again next time
    return len(done)
