"""`llmkpi cost report|export`: one period's GPU bill allocated to requests, or FOCUS rows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmkpi import settings as settings_mod
from llmkpi.commands.kpi import load_config, period_of

HELP = "GPU cost per token for a period: report, or FOCUS export"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("report", "export"))
    parser.add_argument("--period", default="month", help="week, month or quarter (month)")
    parser.add_argument("--at", help="the period (2026-W40, 2026-10, 2026-Q4) or a date in it"
                        " (default: the last full one)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--focus", help="export: write FOCUS-shaped CSV rows to this file")
    parser.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")
    parser.add_argument("--config", help="KPI config YAML: margin_basis (LLMKPI_KPI_CONFIG)")


def run(args: argparse.Namespace) -> int:
    from collectors import rollup
    from collectors.store import Store, shown
    from kpi_mapping import cost_report

    period = period_of(args.period, args.at)
    if args.action == "export" and not args.focus:
        raise ValueError("cost export needs --focus FILE")
    config = load_config(args.config)
    url = settings_mod.database_url(args.database)
    store = Store.open_existing(url)
    try:
        rollup.refresh(store)  # ledger rows the sidecars wrote since the last report
        if args.action == "export":
            rows = cost_report.export_focus(store, period, Path(args.focus))
            print(f"{args.focus}: {rows} FOCUS rows for {period.label} from {shown(url)}")
            return 0
        doc = cost_report.report(store, period, config.margin_basis)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(doc | {"store": shown(url)}, indent=2))
    else:
        print(f"store: {shown(url)}")
        print(cost_report.format_table(doc))
    return 0
