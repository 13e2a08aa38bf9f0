"""`llmkpi app`: bring the store up to date, then serve the Streamlit executive view.

The page only reads, so this launcher does the writing first: it migrates an older store and
rolls up new ledger rows. It hands the page its config (store, KPI config, SLO targets and
the PromQL of the live numbers, built from the catalogue) as one JSON file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from llmkpi import settings as settings_mod

DEFAULT_PORT = 8501


HELP = "the executive view (Streamlit) at http://127.0.0.1:8501"


def add_arguments(app: argparse.ArgumentParser) -> None:
    app.add_argument("--database", help="SQLite path or URL (default LLMKPI_DATABASE_URL)")
    app.add_argument("--kpi-config", help="KPI config YAML: bands, targets (LLMKPI_KPI_CONFIG)")
    app.add_argument("--slo-config", help="SLO config YAML whose objectives the serving"
                     " section judges (default: the embedded alerts/slo.yaml)")
    app.add_argument("--prometheus-url", help="also show live numbers from this Prometheus"
                     " (LLMKPI_PROMETHEUS_URL)")
    app.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    app.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")


def live_queries() -> tuple[Any, ...]:
    """The live numbers' PromQL, from the catalogue and the recorded SLO series."""
    from app.config import LiveQuery
    from specs import catalog

    def p95(spec: catalog.MetricSpec) -> str:
        return (f"histogram_quantile(0.95, sum by (le) (rate({spec.name}_bucket[5m])))")

    def mean(spec: catalog.MetricSpec) -> str:  # no data while nothing was observed
        return (f"(sum(rate({spec.name}_sum[15m])) / (sum(rate({spec.name}_count[15m]))"
                " > 0))")

    ttft, queue, prefill = (mean(catalog.TIME_TO_FIRST_TOKEN), mean(catalog.REQUEST_QUEUE_TIME),
                            mean(catalog.REQUEST_PREFILL_TIME))
    # docs/kpis.md "TTFT decomposition": the engine's spans need its per-request metrics
    split = (LiveQuery("Mean TTFT (15 m)", ttft, "seconds", group="ttft"),
             LiveQuery("Engine queue", queue, "seconds", group="ttft"),
             LiveQuery("Engine prefill", prefill, "seconds", group="ttft"),
             LiveQuery("Before the engine", f"{ttft} - {queue} - {prefill}", "seconds",
                       group="ttft"))

    return (LiveQuery("TTFT p95 (5 m)", p95(catalog.TIME_TO_FIRST_TOKEN), "seconds"),
            LiveQuery("ITL p95 (5 m)", p95(catalog.INTER_TOKEN_LATENCY), "seconds"),
            LiveQuery("Engines up", f"avg({catalog.ENGINE_UP.name})", "ratio"),
            # bottomk keeps the labels: the tile names the SLO (and model) it is
            LiveQuery("Least SLO budget left",
                      f"bottomk(1, {catalog.SLO_BUDGET_REMAINING.name})", "budget",
                      name_by="slo,model"), *split)


def page_config(args: argparse.Namespace) -> Any:
    from alerts import build, config
    from app.config import PageConfig

    slo_path = Path(args.slo_config) if args.slo_config else build.DEFAULT_CONFIG
    slo_config = config.load(slo_path)
    slos = slo_config.slos
    kpi_path = settings_mod.kpi_config_path(args.kpi_config)
    if kpi_path is not None:
        from kpi_mapping.config import load

        load(kpi_path)  # a bad file stops here with its line, not on the page
    return PageConfig(database=settings_mod.database_url(args.database),
                      kpi_config=str(kpi_path) if kpi_path else None,
                      prometheus_url=settings_mod.prometheus_url(args.prometheus_url),
                      slos=slos, live=live_queries(),
                      throttled_is_failure=slo_config.throttled_is_failure)


def prepare_store(url: str) -> None:
    """Migrate and roll up, so the read-only page sees every request."""
    from collectors import rollup
    from collectors.store import Store

    store = Store.open_existing(url)
    try:
        rolled = rollup.refresh(store, lambda line: print(line, file=sys.stderr))
        if rolled:
            print(f"rolled up {rolled:,} new ledger rows", file=sys.stderr)
    finally:
        store.close()


def _warm_in_background(config: Any) -> None:
    """A child process keeps the picker's closed periods in the store's period cache while
    the page starts (a year of history is ~30 s once; then each visit reads it). It dies with
    the page's process group; what it kept by then stays valid."""
    if os.fork():
        return
    code = 0
    try:
        from app import data
        from app.config import PageConfig
        from collectors.store import Store

        page = PageConfig.from_json(config.to_json())  # the page's own view of the config
        store = Store.open_existing(page.database, migrate=False)
        try:
            looked = data.warm(store, data.kpi_config_for(page.kpi_config,
                                                          page.throttled_is_failure),
                               page.slos, page.throttled_is_failure)
            print(f"period cache: {looked} closed periods kept for the page", file=sys.stderr)
        finally:
            store.close()
    except Exception as problem:  # a cache that could not be filled: the page computes
        print(f"period cache not filled: {problem}", file=sys.stderr)
        code = 1
    finally:
        os._exit(code)


def streamlit_argv(config_json: str, host: str, port: int) -> list[str]:
    import app

    script = Path(app.__file__).parent / "streamlit_app.py"
    return [sys.executable, "-m", "streamlit", "run", str(script),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer",
            "--", config_json]


def run(args: argparse.Namespace) -> int:
    config = page_config(args)
    prepare_store(config.database)
    print(f"executive view: http://{args.host}:{args.port}  (store {config.database}"
          + (f", live numbers from {config.prometheus_url}" if config.prometheus_url else "")
          + ")", flush=True)
    _warm_in_background(config)
    argv = streamlit_argv(config.to_json(), args.host, args.port)  # no temp file left behind
    os.execv(argv[0], argv)  # Streamlit takes over this process: Ctrl-C and kill reach it
