"""`llmkpi demo`: the whole stack on the demo company (what `make demo` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("the whole stack on the demo company: load, reports, Prometheus with the generated"
        " rules, the executive view")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--rps", type=float, default=6.0)
    parser.add_argument("--workdir", default=".demo")
    parser.add_argument("--months", type=int, default=12, help="months of demo-company history")
    parser.add_argument("--serving", choices=("single", "pd"), default="single",
                        help="pd: prefill and decode on separate simulated engines, the KV"
                        " cache moved between them, a sidecar per role and the gateway's"
                        " endpoint picker (the Disaggregated serving dashboard)")
    parser.add_argument("--headless", action="store_true",
                        help="check the page answers, then stop everything (CI)")


def run(args: argparse.Namespace) -> int:
    from llmkpi.demo import run_demo

    return run_demo(seconds=args.seconds, rps=args.rps, workdir=Path(args.workdir),
                    months=args.months, headless=args.headless, serving=args.serving)
