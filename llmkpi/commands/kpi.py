"""`llmkpi kpi mappings | report | serve`: the 19 mappings, a period's report, and the
report as Prometheus gauges refreshed on an interval."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmkpi import settings as settings_mod

log = logging.getLogger("llmkpi.kpi")


HELP = "the 19 CEO-KPI → CTO-metric mappings: list, report, serve as gauges"


def add_arguments(kpi: argparse.ArgumentParser) -> None:
    kpi.add_argument("action", choices=("mappings", "report", "serve"))
    kpi.add_argument("--period", default="month", help="week, month or quarter (month)")
    kpi.add_argument("--at", help="the period (2026-W40, 2026-10, 2026-Q4) or a date in it"
                     " (default: the last full one)")
    kpi.add_argument("--format", choices=("table", "json", "csv"), default="table")
    kpi.add_argument("--config", help="KPI config YAML: bands, targets (LLMKPI_KPI_CONFIG)")
    kpi.add_argument("--slo-config", help="SLO config YAML: whether a 429 counts against"
                     " availability (default: the embedded alerts/slo.yaml)")
    kpi.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")
    kpi.add_argument("--port", type=int, default=9464, help="serve: metrics port (9464)")
    kpi.add_argument("--host", "--metrics-host", dest="host", default="127.0.0.1",
                     help="serve: address /metrics listens on")
    kpi.add_argument("--web-config-file", help="serve: TLS and basic auth for /metrics, in"
                     " the Prometheus exporters' web config format (LLMKPI_WEB_CONFIG_FILE)")
    kpi.add_argument("--interval", type=float, default=300.0,
                     help="serve: seconds between refreshes (300)")


def period_of(kind: str, at: str | None) -> Any:
    """The period named by --period and --at; without --at the last full one."""
    from kpi_mapping import periods

    if at:
        return periods.parse_period(kind, at)
    return periods.period_containing(kind, datetime.now(UTC).date()).previous()


def load_config(flag: str | None, slo_flag: str | None = None) -> Any:
    """The KPI config, with the availability switch of the SLO config (one switch for KPI 7,
    the page and the SLO rules)."""
    from dataclasses import replace

    from alerts import build
    from alerts import config as slo_config
    from kpi_mapping import config

    path = settings_mod.kpi_config_path(flag)
    loaded = config.load(path) if path else config.KpiConfig()
    slos = slo_config.load(Path(slo_flag) if slo_flag else build.DEFAULT_CONFIG)
    return replace(loaded, throttled_is_failure=slos.throttled_is_failure)


def run(args: argparse.Namespace) -> int:
    from kpi_mapping.mappings import MAPPINGS

    if args.action == "mappings":
        if args.format == "json":
            print(json.dumps([m.to_dict() for m in MAPPINGS], indent=2))
        else:
            for m in MAPPINGS:
                print(f"{m.id:>2} {m.ceo_kpi} = {m.ceo_formula}\n   → {m.cto_metric} ="
                      f" {m.cto_formula} [{m.cto_unit}, {m.better} is better]")
        return 0
    config = load_config(args.config, args.slo_config)  # bad configs fail before the store
    period = period_of(args.period, args.at)
    if args.action == "report":
        return _report(args, period, config)
    return _serve(args, period, config)


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _report(args: argparse.Namespace, period: Any, config: Any) -> int:
    from collectors.store import Store, shown
    from kpi_mapping import report

    url = settings_mod.database_url(args.database)
    store = Store.open_existing(url)
    try:
        result = report.build(store, period, config, _progress)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(report.to_dict(result, config) | {"store": shown(url)}, indent=2))
    elif args.format == "csv":
        sys.stdout.write(report.format_csv(result))
    else:
        print(f"store: {shown(url)}")
        print(report.format_table(result, config))
    return 0


def snapshot(store: Any, period: Any, config: Any) -> Any:
    """The report and the cost figures of the period as plain data for the gauges."""
    from exporters.kpi_gauges import KpiSample, KpiSnapshot
    from kpi_mapping import cost_report, report
    from kpi_mapping.cost import NoGpuInventoryError

    result = report.build(store, period, config)
    star = report.north_star(result, config)
    samples = [KpiSample(r.mapping.id, r.mapping.key, r.ceo.value, r.cto.value, r.band)
               for r in result.rows]
    extra: dict[str, Any] = {}
    try:
        cost = cost_report.report(store, period, config.margin_basis)
    except NoGpuInventoryError as exc:  # no GPU inventory: the KPI gauges still go out
        log.warning("cost gauges skipped: %s", exc)
    else:
        extra = {
            "cost_per_million": [
                (str(m["model"]), kind, basis, float(m[f"{prefix}_{kind}_per_m"]))
                for m in cost["models"] for kind in ("input", "output", "blended")
                for basis, prefix in (("fully_loaded", "loaded"), ("busy_time", "busy"))
                if m[f"{prefix}_{kind}_per_m"] is not None],
            "gpu_bill": cost["gpu_bill"], "idle_cost": cost["idle"],
            "tenant_cost": {str(t["tenant"]): t["loaded_cents"] / 100 for t in cost["tenants"]},
            "feature_cost": {str(f["feature"]): f["loaded_cents"] / 100
                             for f in cost["features"]},
            "tenant_margin": {str(t["tenant"]): float(t["margin"]) for t in cost["margin"]
                              if t["margin"] is not None}}
    return KpiSnapshot(
        period.label, period.kind, samples,
        revenue_per_employee=star["revenue_per_employee"]["value"],
        engineer_productivity=star["engineer_productivity_index"]["value"],
        refreshed=time.time(), **extra)


def _serve(args: argparse.Namespace, period: Any, config: Any) -> int:
    from collectors.store import Store
    from exporters.kpi_gauges import KpiExporter

    web = settings_mod.web_config(args.web_config_file)  # checked before the store opens
    exporter = KpiExporter()
    store = Store.open(settings_mod.database_url(args.database))
    stop = threading.Event()

    def refresh() -> None:
        started = time.monotonic()
        try:
            exporter.collector.update(snapshot(store, period, config))
        except Exception:  # a broken refresh keeps the last values and is counted
            log.exception("KPI refresh failed")
            exporter.collector.failed()
        else:
            log.info("KPI gauges for %s refreshed in %.1f s", period.label,
                     time.monotonic() - started)

    refresh()
    exporter.serve(args.port, args.host, web)
    scheme = "https" if web is not None and web.tls else "http"
    print(f"KPI gauges for {period.label} on {scheme}://{args.host}:{args.port}/metrics,"
          f" refreshed every {args.interval:g} s (Ctrl-C stops)", flush=True)
    try:
        while not stop.wait(args.interval):
            refresh()
    finally:
        store.close()
    return 0
