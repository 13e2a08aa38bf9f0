"""The `llmkpi` command. User mistakes end in one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from llmkpi import app_cli, generate_cli, kpi_cli
from llmkpi import settings as settings_mod


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmkpi", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sc = sub.add_parser("sidecar", help="measuring proxy in front of an OpenAI-compatible engine")
    sc.add_argument("--upstream", help="engine base URL, e.g. http://vllm:8000")
    sc.add_argument("--host")
    sc.add_argument("--port", type=int, help="traffic port (default 8080)")
    sc.add_argument("--metrics-port", type=int, help="Prometheus port (default 9464)")
    sc.add_argument("--tenant-aliases", help="YAML file: tenant name -> API-key hashes")
    sc.add_argument("--max-tenants", type=int, help="tenants with their own series (20)")
    sc.add_argument("--records-out", help="append every request record to this JSONL file")
    sc.add_argument("--engine-poll-seconds", type=float, help="engine /metrics poll interval")
    sc.add_argument("--otlp-endpoint", help="send spans over OTLP to this base URL")
    sc.add_argument("--trace-sample-ratio", type=float, help="share of new traces kept (1.0)")
    sc.add_argument("--outbox", help="product events: SQLite outbox (Mixpanel when configured)")
    sc.add_argument("--ledger", action="store_true", default=None,
                    help="write every request to the store (LLMKPI_DATABASE_URL)")

    ev = sub.add_parser("events", help="the product-event outbox: status, or flush to Mixpanel")
    ev.add_argument("action", choices=("status", "flush"))
    ev.add_argument("--outbox", help="outbox file (default LLMKPI_OUTBOX)")
    ev.add_argument("--api-host", help="Mixpanel API base URL (default LLMKPI_MIXPANEL_API_HOST)")
    ev.add_argument("--timeout", type=float, default=300.0, help="flush: give up after seconds")

    sim = sub.add_parser("simulate", help="simulated OpenAI-compatible engine (no GPU needed)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8000)
    sim.add_argument("--profile", default="h100-llama3-8b")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--list-profiles", action="store_true", help="print profiles and exit")
    sim.add_argument("--plugin-metrics-port", type=int,
                     help="also export what the llmkpi vLLM plugin would (queue time too)")

    lg = sub.add_parser("loadgen", help="stream load from several tenants, client-side timings")
    lg.add_argument("--target", required=True, help="base URL of the sidecar or engine")
    lg.add_argument("--tenants", type=int, default=5)
    lg.add_argument("--rps", type=float, default=4.0)
    lg.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    lg.add_argument("--seed", type=int, default=0)
    lg.add_argument("--pattern", choices=("poisson", "bursty"), default="poisson")
    lg.add_argument("--model", help="model name (default: the first from /v1/models)")
    lg.add_argument("--prompt-median", type=int, default=250, help="median prompt words")
    lg.add_argument("--output-median", type=int, default=120, help="median output tokens")
    lg.add_argument("--json-out", help="write one JSON line per request here")

    db = sub.add_parser("db", help="the store: apply migrations, show the schema revision")
    db.add_argument("action", choices=("upgrade", "revision"))
    db.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")

    im = sub.add_parser("import", help="load a file into the store (all or nothing)")
    from llmkpi.imports import add_arguments

    add_arguments(im)

    th = sub.add_parser("tenant-hash", help="print the tenant id an API key maps to")
    th.add_argument("key")

    vs = sub.add_parser("vllm-serve", help="start vLLM's OpenAI server with the llmkpi plugin",
                        description="Everything after MODEL goes to vLLM unchanged.")
    vs.add_argument("model")
    vs.add_argument("vllm_args", nargs=argparse.REMAINDER)

    tm = sub.add_parser("make-tiny-model", help="build a tiny random Llama for CPU tests")
    tm.add_argument("dir", help="where to write it (reused when already built)")

    demo = sub.add_parser("demo", help="the whole stack on the demo company: load, reports,"
                          " Prometheus with the generated rules, the executive view")
    demo.add_argument("--seconds", type=float, default=60.0)
    demo.add_argument("--rps", type=float, default=6.0)
    demo.add_argument("--workdir", default=".demo")
    demo.add_argument("--months", type=int, default=12, help="months of demo-company history")
    demo.add_argument("--headless", action="store_true",
                      help="check the page answers, then stop everything (CI)")

    co = sub.add_parser("cost", help="GPU cost per token for a period: report, or FOCUS export")
    co.add_argument("action", choices=("report", "export"))
    co.add_argument("--period", default="month", help="week, month or quarter (month)")
    co.add_argument("--at", help="the period (2026-W40, 2026-10, 2026-Q4) or a date in it"
                    " (default: the last full one)")
    co.add_argument("--format", choices=("table", "json"), default="table")
    co.add_argument("--focus", help="export: write FOCUS-shaped CSV rows to this file")
    co.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")
    co.add_argument("--config", help="KPI config YAML: margin_basis (LLMKPI_KPI_CONFIG)")

    kpi_cli.add_arguments(sub)
    generate_cli.add_arguments(sub)
    app_cli.add_arguments(sub)

    dd = sub.add_parser("demo-data", help="generate a seeded demo company and load it")
    dd.add_argument("--months", type=int, default=12, help="months of history (12)")
    dd.add_argument("--seed", type=int, default=7)
    dd.add_argument("--end-month", help="last month, YYYY-MM (default: last full month)")
    dd.add_argument("--out", default=".demo/company", help="where the generated files go")
    dd.add_argument("--requests-per-day", type=float, default=500.0,
                    help="ledger traffic at the start, before growth (500)")
    dd.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=settings_mod.log_level(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "openai", "aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"llmkpi: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sidecar":
        from llmkpi.serve import run_sidecar

        run_sidecar(settings_mod.SidecarSettings.from_flags(vars(args)))
        return 0
    if args.command == "simulate":
        from engine_shim.simulator.profiles import PROFILES
        from llmkpi.serve import run_simulator

        if args.list_profiles:
            for profile in PROFILES.values():
                print(f"{profile.name}: {profile.doc}\n")
            return 0
        run_simulator(args.host, args.port, args.profile, args.seed, args.plugin_metrics_port)
        return 0
    if args.command == "loadgen":
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
    if args.command in ("db", "import"):
        return _store_command(args)
    if args.command == "events":
        return _events(args)
    if args.command == "tenant-hash":
        from engine_shim.tenancy import hash_api_key

        env = settings_mod.Env()
        print(hash_api_key(args.key, env.get_str("LLMKPI_KEY_SALT", settings_mod.DEFAULT_SALT)))
        return 0
    if args.command == "vllm-serve":
        import importlib.util
        import os

        if importlib.util.find_spec("vllm") is None:
            raise ValueError("vllm is not installed in this environment; use the engine"
                             " environment (.venv-engine/bin/llmkpi) or `pip install vllm`")
        argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model",
                args.model, *args.vllm_args]
        os.execv(sys.executable, argv)
    if args.command == "make-tiny-model":
        from llmkpi import tiny_model

        path = tiny_model.build(Path(args.dir))
        info = json.loads((path / "llmkpi-tiny-model.json").read_text())
        print(f"{path}: Llama, {info['parameters']:,} parameters, recipe {info['recipe']}")
        return 0
    if args.command == "demo":
        from llmkpi.demo import run_demo

        return run_demo(seconds=args.seconds, rps=args.rps, workdir=Path(args.workdir),
                        months=args.months, headless=args.headless)
    if args.command == "cost":
        return _cost(args)
    if args.command == "kpi":
        return kpi_cli.run(args)
    if args.command == "app":
        return app_cli.run(args)
    if args.command == "dashboards":
        return generate_cli.run_dashboards(args)
    if args.command == "alerts":
        return generate_cli.run_alerts(args)
    if args.command == "demo-data":
        from llmkpi import demo_data

        end = demo_data.parse_month(args.end_month)
        counts = demo_data.run(Path(args.out), settings_mod.database_url(args.database),
                               args.months, args.seed, end, args.requests_per_day)
        print(", ".join(f"{kind} {rows}" for kind, rows in counts.items()))
        return 0
    raise AssertionError(args.command)


def _cost(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from collectors.store import Store
    from kpi_mapping import cost_report, periods

    if args.at:
        period = periods.parse_period(args.period, args.at)
    else:
        now = datetime.now(UTC).date()
        period = periods.period_containing(args.period, now).previous()
    if args.action == "export" and not args.focus:
        raise ValueError("cost export needs --focus FILE")
    config = kpi_cli.load_config(args.config)
    url = settings_mod.database_url(args.database)
    store = Store.open(url)
    try:
        if args.action == "export":
            rows = cost_report.export_focus(store, period, Path(args.focus))
            print(f"{args.focus}: {rows} FOCUS rows for {period.label}")
            return 0
        doc = cost_report.report(store, period, config.margin_basis)
    finally:
        store.close()
    print(json.dumps(doc, indent=2) if args.format == "json" else cost_report.format_table(doc))
    return 0


def _events(args: argparse.Namespace) -> int:
    from exporters.mixpanel import MixpanelSender
    from exporters.outbox import Outbox
    from llmkpi.serve import mixpanel_target

    events = settings_mod.EventsSettings.from_env(outbox_flag=args.outbox,
                                                  api_host_flag=args.api_host)
    if events.outbox is None:
        raise ValueError("no outbox: pass --outbox FILE or set LLMKPI_OUTBOX")
    if not events.outbox.exists():
        raise FileNotFoundError(f"{events.outbox}: no such outbox")
    outbox = Outbox(events.outbox, max_events=events.max_events)
    if args.action == "flush":
        if not events.token:
            raise ValueError("flush needs LLMKPI_MIXPANEL_TOKEN (and credentials)")
        sender = MixpanelSender(outbox, mixpanel_target(events))
        drained = sender.drain(args.timeout)
        if not drained:
            print(f"not drained after {args.timeout:g}s: {sender.last_error}", file=sys.stderr)
    stats = outbox.stats()
    print(f"{events.outbox}: pending {stats.pending}, quarantined {stats.quarantined},"
          f" sent {stats.sent}, dropped {stats.dropped}")
    for event_id, name, reason in outbox.quarantined()[:20]:
        print(f"  quarantined {name} {event_id}: {reason}")
    return 0 if args.action == "status" or stats.pending == 0 else 1


def _store_command(args: argparse.Namespace) -> int:
    from collectors.store import Store
    from llmkpi import imports

    url = settings_mod.database_url(args.database)
    # a wrong kind or option fails before the store is opened
    importer = imports.importer_for(args) if args.command == "import" else None
    store = Store.open(url)
    try:
        if args.command == "db":
            print(f"{url}: schema revision {store.revision()}")
            return 0
        assert importer is not None
        imports.run(args, importer, store, url)
        return 0
    finally:
        store.close()
