"""`llmkpi sidecar`: the measuring proxy in front of an OpenAI-compatible engine."""

from __future__ import annotations

import argparse

from llmkpi import settings as settings_mod

HELP = "measuring proxy in front of an OpenAI-compatible engine"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--upstream", help="engine base URL, e.g. http://vllm:8000")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int, help="traffic port (default 8080)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (default 9464)")
    parser.add_argument("--metrics-host", help="address /metrics listens on (default: --host;"
                        " LLMKPI_METRICS_HOST)")
    parser.add_argument("--web-config-file", help="TLS and basic auth for /metrics, in the"
                        " Prometheus exporters' web config format (LLMKPI_WEB_CONFIG_FILE)")
    parser.add_argument("--tenant-aliases", help="YAML file: tenant name -> API-key hashes")
    parser.add_argument("--max-body-mib", type=int, help="largest request body relayed, in"
                        " MiB; a larger one is answered 413 and counted (32;"
                        " LLMKPI_MAX_BODY_MIB)")
    parser.add_argument("--max-tenants", type=int, help="tenants with their own series (20)")
    parser.add_argument("--records-out", help="append every request record to this JSONL file")
    parser.add_argument("--journal", help="folder of the request journal: the data plane"
                        " appends each record there and the sinks read it, the ledger and"
                        " outbox resuming exactly where they stopped (LLMKPI_JOURNAL)")
    parser.add_argument("--data-plane", choices=("python", "nginx"),
                        help="what relays the bytes: nginx with its Lua module (default where"
                        " installed, else python), the telemetry staying in this process"
                        " (LLMKPI_DATA_PLANE)")
    parser.add_argument("--engine-poll-seconds", type=float,
                        help="engine /metrics poll interval")
    parser.add_argument("--otlp-endpoint", help="send spans over OTLP to this base URL")
    parser.add_argument("--trace-sample-ratio", type=float,
                        help="share of new traces kept (1.0)")
    parser.add_argument("--outbox", help="product events: SQLite outbox (Mixpanel when"
                        " configured)")
    parser.add_argument("--ledger", action="store_true", default=None,
                        help="write every request to the store (LLMKPI_DATABASE_URL)")


def run(args: argparse.Namespace) -> int:
    from llmkpi.serve import run_sidecar

    run_sidecar(settings_mod.SidecarSettings.from_args(args))
    return 0
