"""`llmkpi import KIND PATH [options]`: picks the importer for a kind, with its options.

Lives here, above every package, because the Prometheus importer reads the engine-metric
name table of engine_shim and the catalogue of exporters, which collectors may not import.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collectors.importers.base import Importer, ImportResult, run_import
from collectors.importers.deployments import DeploymentsImporter
from collectors.importers.git import GitImporter
from collectors.importers.jira import WorkItemsImporter
from collectors.importers.ours import IMPORTERS
from collectors.importers.prometheus import SNAPSHOT_FIELDS, PrometheusImporter
from collectors.importers.xmlfiles import CoverageImporter
from collectors.store import Store
from engine_shim.engine_metrics import NAME_TABLE
from specs import catalog

KINDS = sorted([*IMPORTERS, "prometheus"])
SIDECAR_NAMES = {
    "kv_cache_usage": catalog.ENGINE_KV_CACHE_USAGE.name,
    "requests_running": catalog.ENGINE_REQUESTS_RUNNING.name,
    "requests_waiting": catalog.ENGINE_REQUESTS_WAITING.name,
    "preemptions_total": catalog.ENGINE_PREEMPTIONS.name,
    "prefix_cache_queries_total": catalog.ENGINE_PREFIX_CACHE_QUERIES.name,
    "prefix_cache_hits_total": catalog.ENGINE_PREFIX_CACHE_HITS.name,
}


def engine_series() -> dict[str, tuple[str, ...]]:
    """Per snapshot field: the engines' own names, newest first, then the sidecar's."""
    return {field: (*(a.name for a in NAME_TABLE[field]), SIDECAR_NAMES[field])
            for field in SNAPSHOT_FIELDS}


def _time(value: str | None, flag: str, default: datetime) -> datetime:
    if not value:
        return default
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{flag} {value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def importer_for(args: argparse.Namespace) -> Importer:
    if args.kind not in KINDS:
        raise ValueError(f"unknown import kind {args.kind!r}; choose one of {', '.join(KINDS)}")
    if args.kind == "git":
        return GitImporter(args.tags, repository=args.repository, service=args.service)
    if args.kind == "work-items":
        return WorkItemsImporter(args.timezone)
    if args.kind == "coverage":
        return CoverageImporter(args.component)
    if args.kind == "prometheus":
        end = _time(args.end, "--end", datetime.now(UTC))
        start = _time(args.start, "--start", end - timedelta(days=1))
        return PrometheusImporter(engine_series(), start=start, end=end, step=args.step,
                                  progress=lambda line: print(line, file=sys.stderr))
    return IMPORTERS[args.kind]


def run(args: argparse.Namespace, importer: Importer, store: Store, url: str) -> None:
    jobs: list[tuple[Importer, Path]] = [(importer, Path(args.path))]
    if args.kind == "git" and args.deployments:
        jobs.append((DeploymentsImporter(), Path(args.deployments)))
    for job, path in jobs:
        def progress(done: int, kind: str = job.kind) -> None:
            print(f"\r{kind}: {done} rows checked and written", end="", file=sys.stderr,
                  flush=True)

        result: ImportResult = run_import(store, job, path, progress)
        if result.already_imported:
            print(f"{path}: already imported ({result.rows} rows); nothing changed")
        else:
            print(f"\n{path}: imported {result.rows} {job.kind} rows into {url}")
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
