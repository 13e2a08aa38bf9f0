"""`llmkpi import KIND PATH`: load a file into the store, all or nothing (docs/imports.md)."""

from __future__ import annotations

import argparse

from llmkpi import settings as settings_mod

HELP = "load a file into the store (all or nothing)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from llmkpi import imports

    imports.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from collectors.store import Store
    from llmkpi import imports

    url = settings_mod.database_url(args.database)
    importer = imports.importer_for(args)  # a wrong kind or option fails before the store
    store = Store.open(url)
    try:
        imports.run(args, importer, store, url)
    finally:
        store.close()
    return 0
