"""Load a generated demo company into a store: files through the ordinary importers (each all
or nothing, idempotent), then ledger rows and engine readings in batches (insert-or-ignore on
their keys, so a second run adds nothing)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

from collectors import rollup
from collectors.demo_company import DemoCompany
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
    fleet = company.fleet()
    months = len(fleet.timeline.months)

    def ledger_progress(written: int, last: dict[str, Any]) -> None:
        say(f"\r  ledger          {written:>7} requests, up to {last['arrival']:%Y-%m-%d}"
            f" ({fleet.timeline.month_index(last['arrival']) + 1}/{months} months)")

    counts["ledger"] = _write(store, LedgerRow, fleet.requests(), ledger_progress)
    counts["engine_snapshot"] = _write(store, EngineSnapshotRow, fleet.readings())
    say(f"\n  engine readings {counts['engine_snapshot']:>7} (every 15 min per pod)")
    # roll the ledger up now, while loading, so the first KPI report does not pay for it
    say(f"  ledger roll-up  {rollup.refresh(store):>7} requests into hourly sums")
    return counts


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
