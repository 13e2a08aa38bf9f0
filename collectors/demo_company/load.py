"""Load a generated demo company into a store: files through the ordinary importers (each all
or nothing, idempotent), then the fleet's requests — the recent days as ledger rows, older
months as the hourly roll-up — and engine readings (insert-or-ignore on their keys, roll-up
hours replaced, so a second run changes nothing)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel import SQLModel

from collectors import rollup, usage
from collectors.demo_company import DemoCompany
from collectors.demo_company import traffic as traffic_mod
from collectors.demo_company.serving import Readings
from collectors.demo_company.timeline import add_months, at
from collectors.importers.base import run_import
from collectors.importers.deployments import DeploymentsImporter
from collectors.importers.git import GitImporter
from collectors.importers.ours import IMPORTERS
from collectors.store import Store
from collectors.tables import EngineSnapshotRow, LedgerRow

Say = Callable[[str], None]
FILES = (("people", "people.csv"), ("finance", "finance.csv"), ("gpus", "gpus.csv"),
         ("tenant-revenue", "tenant-revenue.csv"), ("incidents", "incidents.csv"),
         ("work-items", "jira-export.csv"), ("releases", "releases.csv"),
         ("mixpanel", "mixpanel-export.jsonl"))
BATCH = 5000


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def load(store: Store, company: DemoCompany, say: Say = print) -> dict[str, int]:
    directory = company.directory
    counts: dict[str, int] = {}
    jobs: list[tuple[Any, Path]] = [(IMPORTERS[kind], directory / name) for kind, name in FILES]
    jobs.append((GitImporter(repository="llm-platform"), directory / "repo"))
    jobs.append((DeploymentsImporter(), directory / "deployments.csv"))
    jobs += [(IMPORTERS["coverage"], path) for path in sorted(directory.glob("coverage-*.xml"))]
    for importer, path in jobs:
        result = run_import(store, importer, path)
        counts[importer.kind] = counts.get(importer.kind, 0) + result.rows
        note = " (already loaded)" if result.already_imported else ""
        say(f"  {importer.kind:<15} {result.rows:>7} rows from {path.name}{note}")
    counts |= serve(store, company, say)
    return counts


def _spans(company: DemoCompany) -> list[tuple[datetime, int, bool]]:
    """(start, hours, raw) month by month, cut where the raw days begin."""
    timeline = company.timeline()
    raw_from = company.raw_from()
    out = []
    for month in timeline.months:
        lo, hi = at(month), at(add_months(month, 1))
        for start, end, raw in ((lo, min(hi, raw_from), False), (max(lo, raw_from), hi, True)):
            if end > start:
                out.append((start, int((end - start).total_seconds() // 3600), raw))
    return out


def serve(store: Store, company: DemoCompany, say: Say = print) -> dict[str, int]:
    """The fleet's requests: the last `raw_days` as ledger rows, every month before as the
    hourly roll-up (drawn thinned and scaled, collectors/demo_company/traffic.py), and the
    roll-up of the raw days summed here (collectors/usage.py, as a refresh would)."""
    rollup.refresh(store)  # anything waiting is summed first, so marking below loses nothing
    since = rollup.top_id(store)
    traffic, readings = company.traffic(), Readings(company.timeline(), list(company.pods))
    pods = [p.name for p in company.pods]
    counts = {"ledger": 0, "rolled_up_requests": 0, "engine_snapshot": 0}
    spans = _spans(company)
    tail = pd.DataFrame()  # the previous span's requests still running at its end
    for number, (start, hours, raw) in enumerate(spans, 1):
        start_us = int(start.timestamp()) * usage.US
        thin = 1 if raw else company.thin(start)
        frame = traffic.span(start, hours, thin)
        rng = np.random.default_rng([company.seed, number])
        if thin == 1:  # every request drawn: summed exactly, as a refresh would
            pod_hours, rows = usage.summarise(pd.concat([tail, frame], ignore_index=True)
                                              if len(tail) else frame, start_us, hours)
            tail = frame[frame["finish_us"] > start_us + hours * usage.HOUR_US]
            if raw:
                counts["ledger"] += _write(store, LedgerRow, iter(ledger_rows(frame)))
        else:
            pod_hours, rows = traffic_mod.rolled(frame, thin, start_us, hours, rng)
        with store.engine.begin() as conn:
            rollup.replace_hours(conn, pods, start.timestamp(),
                                 start.timestamp() + hours * 3600, pod_hours, rows)
        counts["rolled_up_requests"] += int(rows["requests"].sum()) if len(rows) else 0
        counts["engine_snapshot"] += _write(store, EngineSnapshotRow,
                                            iter(readings.span(frame, thin, start_us, hours)))
        end = start + timedelta(hours=hours)
        say(f"\r  requests        {counts['rolled_up_requests']:>10,} up to {end:%Y-%m-%d}"
            f" ({number}/{len(spans)} spans; {counts['ledger']:,} kept as raw rows)")
    rollup.mark_current(store, since)
    say(f"\n  engine readings {counts['engine_snapshot']:>7} (every 15 min per pod)")
    return counts


LEDGER_COLUMNS = ("source", "request_id", "tenant", "model", "feature", "endpoint", "pod",
                  "gpu", "outcome", "http_status", "time_to_first_token", "e2e_latency",
                  "mean_inter_token_latency", "queue_time", "prefill_time", "decode_time",
                  "prompt_tokens", "output_tokens", "cached_prompt_tokens", "finish_reason",
                  "itl_counts")
INTEGERS = ("http_status", "prompt_tokens", "output_tokens", "cached_prompt_tokens")


def ledger_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Ledger rows (LedgerRow's fields) of a drawn span; NaN becomes NULL."""
    columns: dict[str, list[Any]] = {}
    for name in LEDGER_COLUMNS:
        values = frame[name].to_numpy()
        if values.dtype.kind == "f":
            cast = int if name in INTEGERS else float
            columns[name] = [None if math.isnan(v) else cast(v) for v in values.tolist()]
        else:
            columns[name] = [int(v) if name in INTEGERS else v for v in values.tolist()]
    columns["arrival"] = list(pd.to_datetime(frame["arrival_us"], unit="us", utc=True
                                             ).dt.to_pydatetime())
    columns["finish"] = list(pd.to_datetime(frame["finish_us"], unit="us", utc=True
                                            ).dt.to_pydatetime())
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _write(store: Store, model: type[SQLModel], rows: Iterator[dict[str, Any]],
           progress: Callable[[int, dict[str, Any]], None] | None = None) -> int:
    written = 0
    for batch in _batches(rows):
        with store.session() as session:
            store.insert_ignore(session, model, batch)
            session.commit()
        written += len(batch)
        if progress is not None:
            progress(written, batch[-1])
    return written
