"""`llmkpi loadgen`: stream load from several tenants, with client-side timings."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

HELP = "stream load from several tenants, client-side timings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, help="base URL of the sidecar or engine")
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--rps", type=float, default=4.0)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pattern", choices=("poisson", "bursty", "spike"), default="poisson",
                        help="spike: steady, with 4x the rate from 50 %% to 65 %% of the run")
    parser.add_argument("--model", help="model name (default: the first from /v1/models)")
    parser.add_argument("--prompt-median", type=int, default=250, help="median prompt words")
    parser.add_argument("--output-median", type=int, default=120,
                        help="median output tokens")
    parser.add_argument("--json-out", help="write one JSON line per request here")


def run(args: argparse.Namespace) -> int:
    from llmkpi import loadgen

    spec = loadgen.LoadSpec(
        target=args.target, tenants=args.tenants, rps=args.rps, duration=args.duration,
        seed=args.seed, pattern=args.pattern, model=args.model,
        prompt_median=args.prompt_median, output_median=args.output_median)
    results = asyncio.run(loadgen.run_load(spec))
    print(loadgen.format_table(loadgen.summary_rows(results)))
    if args.json_out:
        loadgen.write_results(results, Path(args.json_out))
    return 0
