"""`llmkpi simulate`: a simulated OpenAI-compatible engine (no GPU needed)."""

from __future__ import annotations

import argparse

HELP = "simulated OpenAI-compatible engine (no GPU needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--profile", default="h100-llama3-8b")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--list-profiles", action="store_true", help="print profiles and exit")
    parser.add_argument("--data-parallel", type=int, default=1, metavar="N",
                        help="N engines behind one server, as vLLM's --data-parallel-size: each"
                        " request to the least loaded, series per `engine` label")
    parser.add_argument("--per-request-metrics", action="store_true",
                        help="return each request's engine timings in the response, as vLLM's"
                        " --enable-per-request-metrics does (the sidecar records them)")
    parser.add_argument("--plugin-metrics-port", type=int,
                        help="also export what the llmkpi vLLM plugin would (queue time too)")


def run(args: argparse.Namespace) -> int:
    from engine_shim.simulator.profiles import PROFILES
    from llmkpi.serve import run_simulator

    if args.list_profiles:
        for profile in PROFILES.values():
            print(f"{profile.name}: {profile.doc}\n")
        return 0
    run_simulator(args.host, args.port, args.profile, args.seed, args.plugin_metrics_port,
                  per_request_metrics=args.per_request_metrics,
                  data_parallel=args.data_parallel)
    return 0
