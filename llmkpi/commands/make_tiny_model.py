"""`llmkpi make-tiny-model DIR`: a tiny random Llama for tests of vLLM on the CPU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "build a tiny random Llama for CPU tests"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="where to write it (reused when already built)")


def run(args: argparse.Namespace) -> int:
    from llmkpi import tiny_model

    path = tiny_model.build(Path(args.dir))
    info = json.loads((path / "llmkpi-tiny-model.json").read_text())
    print(f"{path}: Llama, {info['parameters']:,} parameters, recipe {info['recipe']}")
    return 0
