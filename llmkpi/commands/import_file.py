"""`llmkpi import KIND PATH`: load a file into the store, all or nothing (docs/imports.md)."""

from __future__ import annotations

import argparse

from llmkpi import settings as settings_mod

HELP = "load a file into the store (all or nothing)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _arguments(parser)


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


# The import kinds, spelled out so `llmkpi --help` does not import every importer
# (tests/unit/test_cli.py checks it against llmkpi.imports.KINDS).
KINDS = ("coverage", "deployments", "finance", "git", "gpus", "incidents", "integrations",
         "junit", "ledger", "mixpanel", "outbox", "people", "prometheus", "releases",
         "tenant-revenue", "work-items")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", help=f"what PATH holds: {', '.join(KINDS)} (docs/imports.md)")
    parser.add_argument("path", help="a file; git: a repository folder; prometheus: its URL")
    parser.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")
    git = parser.add_argument_group("git")
    git.add_argument("--tags", metavar="PATTERN",
                     help="each tag matching PATTERN (like 'v*') is a production deployment")
    git.add_argument("--deployments", metavar="FILE", help="also import this deployment log")
    git.add_argument("--repository", help="repository name (default: the folder's name)")
    git.add_argument("--service", help="service the tags deploy (default: the repository)")
    jira = parser.add_argument_group("work-items")
    jira.add_argument("--timezone", default="UTC",
                      help="zone of the Jira export's times, which carry none (UTC)")
    cov = parser.add_argument_group("coverage")
    cov.add_argument("--component", help="the codebase the report measures (default: the"
                     " last folder of the report's <source>)")
    prom = parser.add_argument_group("prometheus")
    prom.add_argument("--start", help="ISO time (default: --end minus 1 day)")
    prom.add_argument("--end", help="ISO time (default: now)")
    prom.add_argument("--step", type=float, default=60.0, help="seconds between points (60)")
