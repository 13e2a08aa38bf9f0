"""`llmkpi demo-data`: generate a seeded demo company and load it into the store."""

from __future__ import annotations

import argparse
from pathlib import Path

from llmkpi import settings as settings_mod

HELP = "generate a seeded demo company and load it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--months", type=int, default=12, help="months of history (12)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end-month", help="last month, YYYY-MM (default: last full month)")
    parser.add_argument("--out", default=".demo/company", help="where the generated files go")
    parser.add_argument("--requests-per-day", type=float, default=55_000.0,
                        help="the fleet's requests a day in the first month, before growth"
                             " (55000)")
    parser.add_argument("--raw-days", type=int, default=2,
                        help="the last days kept as raw ledger rows; older months are stored"
                             " as the hourly roll-up (2; 0 keeps every request raw)")
    parser.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")


def run(args: argparse.Namespace) -> int:
    from llmkpi import demo_data

    end = demo_data.parse_month(args.end_month)
    counts = demo_data.run(Path(args.out), settings_mod.database_url(args.database),
                           args.months, args.seed, end, args.requests_per_day,
                           args.raw_days or None)
    print(", ".join(f"{kind} {rows}" for kind, rows in counts.items()))
    return 0
