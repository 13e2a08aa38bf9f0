"""One module per `llmkpi` subcommand, registered here once.

A command module has `HELP` (one line for `llmkpi --help`), optionally `DESCRIPTION`,
`add_arguments(parser)` and `run(args) -> int`. Adding a command is writing its module and
one line in COMMANDS; llmkpi/cli.py builds the parser and dispatches from this table.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Protocol, cast

from llmkpi.commands import (
    alerts,
    app,
    cost,
    dashboards,
    db,
    demo,
    demo_data,
    events,
    import_file,
    kpi,
    loadgen,
    make_tiny_model,
    sidecar,
    simulate,
    tenant_hash,
    vllm_serve,
)


class Command(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _command(module: ModuleType) -> Command:
    return cast(Command, module)


COMMANDS: dict[str, Command] = {name: _command(module) for name, module in (
    ("sidecar", sidecar), ("events", events), ("simulate", simulate), ("loadgen", loadgen),
    ("db", db), ("import", import_file), ("tenant-hash", tenant_hash),
    ("vllm-serve", vllm_serve), ("make-tiny-model", make_tiny_model), ("demo", demo),
    ("cost", cost), ("kpi", kpi), ("dashboards", dashboards), ("alerts", alerts),
    ("app", app), ("demo-data", demo_data))}
