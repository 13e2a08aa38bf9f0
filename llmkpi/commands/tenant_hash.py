"""`llmkpi tenant-hash KEY`: the tenant id an API key maps to (for the alias file)."""

from __future__ import annotations

import argparse

from llmkpi import settings as settings_mod

HELP = "print the tenant id an API key maps to"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key")


def run(args: argparse.Namespace) -> int:
    from engine_shim.tenancy import hash_api_key

    print(hash_api_key(args.key, settings_mod.key_salt()))
    return 0
