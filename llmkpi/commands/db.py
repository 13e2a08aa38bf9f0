"""`llmkpi db upgrade|revision|retention`: apply the store's migrations, show its schema
revision, drop raw ledger rows past their retention (the hourly roll-ups stay)."""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING

from llmkpi import settings as settings_mod

if TYPE_CHECKING:
    from collectors.store import Store

HELP = "the store: apply migrations, show the schema revision, apply raw-row retention"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("upgrade", "revision", "retention"))
    parser.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")
    parser.add_argument("--keep-days", type=int, default=None,
                        help="retention: whole days of raw ledger rows kept before today"
                        " (LLMKPI_RAW_RETENTION_DAYS, default 35); older rows are rolled up,"
                        " then dropped (a day's partition on PostgreSQL)")
    parser.add_argument("--today", type=date.fromisoformat, default=None,
                        help="retention: the day it counts back from (YYYY-MM-DD; default"
                        " today, UTC)")


def run(args: argparse.Namespace) -> int:
    from collectors.store import Store

    url = settings_mod.database_url(args.database)
    store = Store.open(url)  # opening migrates to the newest revision
    try:
        if args.action == "retention":
            return retention(store, settings_mod.raw_retention_days(args.keep_days),
                             args.today)
        print(f"{url}: schema revision {store.revision()}")
    finally:
        store.close()
    return 0


def retention(store: Store, keep_days: int, today: date | None) -> int:
    from collectors import retention as retention_mod

    try:
        done = retention_mod.apply(store, keep_days, today, progress=print)
    except retention_mod.RetentionError as exc:
        print(f"retention: {exc}")
        return 1
    where = (f"{len(done.days_dropped)} day partitions dropped, partitions made to"
             f" {done.partitions_until}" if done.partitions_until else "rows deleted")
    print(f"retention: {done.rows_removed} raw rows from before {done.cutoff} removed"
          f" ({where}); the hourly roll-ups keep every hour")
    if done.days_held:
        print(f"retention: kept {', '.join(map(str, done.days_held))} for now: rows written"
              " since the roll-up's refresh; the next run takes them")
    return 0
