"""The `llmkpi` command. User mistakes end in one clear line and exit code 2, never a traceback.

Each subcommand is a module of llmkpi/commands, registered once in its COMMANDS table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from llmkpi import settings as settings_mod
from llmkpi.commands import COMMANDS

QUIET_LOGGERS = ("httpx", "httpx2", "openai", "aiohttp.access", "alembic")


def _version() -> str:
    try:
        return version("llmkpi")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="llmkpi", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=f"llmkpi {_version()}")
    sub = top.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        more = getattr(command, "DESCRIPTION", "")
        command.add_arguments(sub.add_parser(
            name, help=command.HELP, description=f"{command.HELP}. {more}".strip(" .")))
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=settings_mod.log_level(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command].run(args)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"llmkpi: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
