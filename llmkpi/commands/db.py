"""`llmkpi db upgrade|revision`: apply the store's migrations, show its schema revision."""

from __future__ import annotations

import argparse

from llmkpi import settings as settings_mod

HELP = "the store: apply migrations, show the schema revision"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("upgrade", "revision"))
    parser.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")


def run(args: argparse.Namespace) -> int:
    from collectors.store import Store

    url = settings_mod.database_url(args.database)
    store = Store.open(url)  # opening migrates to the newest revision
    try:
        print(f"{url}: schema revision {store.revision()}")
    finally:
        store.close()
    return 0
