"""`llmkpi simulate`: a simulated OpenAI-compatible engine (no GPU needed)."""

from __future__ import annotations

import argparse
from typing import Any

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
    parser.add_argument("--pd", type=int, metavar="PREFILL_ENGINES", help="prefill/decode"
                        " disaggregation: this many prefill engines (their /metrics at"
                        " /prefill/metrics) in front of the decode engines (/metrics)")
    parser.add_argument("--kv-bandwidth-gbps", type=float, default=25.0,
                        help="--pd: GB/s the KV cache crosses at (25)")
    parser.add_argument("--kv-fail-every", type=int, default=0, metavar="N",
                        help="--pd: every Nth KV transfer fails (0: none)")
    parser.add_argument("--prefill-via", default="", metavar="URL",
                        help="--pd: send each prefill as an HTTP request to URL (the prefill"
                        " pod, e.g. its llmkpi sidecar in front of this server's /prefill), as"
                        " llm-d's routing sidecar does; default: in process")
    parser.add_argument("--per-request-metrics", action="store_true",
                        help="return each request's engine timings in the response, as vLLM's"
                        " --enable-per-request-metrics does (the sidecar records them)")
    parser.add_argument("--plugin-metrics-port", type=int,
                        help="also export what the llmkpi vLLM plugin would (queue time too)")


def disaggregation(args: argparse.Namespace) -> Any:
    from engine_shim.simulator.server import Disaggregation

    if args.pd is None:
        if args.prefill_via:
            raise ValueError("--prefill-via needs --pd")
        return None
    if args.pd < 1 or args.kv_bandwidth_gbps <= 0 or args.kv_fail_every < 0:
        raise ValueError("--pd needs at least 1 prefill engine, --kv-bandwidth-gbps above 0"
                         " and --kv-fail-every of 0 or more")
    return Disaggregation(prefill_engines=args.pd, bandwidth_gb_s=args.kv_bandwidth_gbps,
                          fail_every=args.kv_fail_every, prefill_via=args.prefill_via)


def run(args: argparse.Namespace) -> int:
    from engine_shim.simulator.profiles import PROFILES
    from llmkpi.serve import run_simulator

    if args.list_profiles:
        for profile in PROFILES.values():
            print(f"{profile.name}: {profile.doc}\n")
        return 0
    run_simulator(args.host, args.port, args.profile, args.seed, args.plugin_metrics_port,
                  per_request_metrics=args.per_request_metrics,
                  data_parallel=args.data_parallel, disaggregation=disaggregation(args))
    return 0
