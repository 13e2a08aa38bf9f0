"""The executive view on the 12-month demo company: seconds to render, cold and cached.

The store is the demo company `make demo` builds (~29 M requests a year: two days raw, older
months as the hourly roll-up; kept under .cache/bench/app/ and reused). Streamlit's AppTest
runs the page in this process, as a browser session would on the server:
- `first_render_seconds`: the first page of a new server process (imports included), with
  the store's period cache empty: every KPI of 11 months computed and kept;
- `warm_seconds`: what `llmkpi app` does in the background as the page starts: keep every
  closed period the picker offers (week, month, quarter) in the period cache;
- `cold_month_seconds`: the month again after the page's in-memory caches are cleared: the
  closed periods come from the store's period cache (what a new visitor sees);
- `cached_rerun_seconds`, `period_switch_seconds` (the month before), `tenant_filter_seconds`,
  `quarter_seconds` (first quarter view).
Targets: a cold month under 3 s, a cached rerun, a period switch and a filter under 1 s.
Figures go to bench/results/app_render.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "app_render.json"
CACHE = ROOT / ".cache" / "bench" / "app"
END_MONTH = date(2026, 10, 1)
TARGET_COLD_SECONDS, TARGET_SWITCH_SECONDS = 3.0, 1.0


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def store(folder: Path, months: int) -> str:
    from collectors.demo_company.load import load
    from collectors.store import Store
    from llmkpi.demo_data import make

    path = folder / f"llmkpi-{months}-v2.sqlite"  # v2: the demo company of issue 15
    if path.exists():
        return str(path)
    say(f"building the {months}-month demo company in {path}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    opened = Store.open(str(tmp))
    try:
        load(opened, make(folder / "company", months, 7, END_MONTH), say=lambda _line: None)
    finally:
        opened.close()
    tmp.rename(path)
    return str(path)


def script(config_json: str) -> None:
    from app.config import PageConfig
    from app.page import main

    main(PageConfig.from_json(config_json))


def timed(step: Any) -> float:
    started = time.perf_counter()
    step()
    return round(time.perf_counter() - started, 3)


def run(database: str) -> dict[str, Any]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app.config import PageConfig
    from collectors.store import Store
    from specs.slo import slo

    opened = Store.open(database)  # the period cache starts empty: the first render fills it
    with opened.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM kpi_period_cache")
    opened.close()
    config = PageConfig(database, slos=(slo("availability", "availability", 0.999),
                                        slo("ttft", "ttft", 0.99, 0.5),
                                        slo("itl", "itl", 0.99, 0.05)))
    at = AppTest.from_function(script, args=(config.to_json(),), default_timeout=300)
    figures = {"first_render_seconds": timed(at.run)}
    assert not at.exception, [e.value for e in at.exception]
    figures["warm_seconds"] = timed(lambda: _warm(config))  # what `llmkpi app` starts
    st.cache_data.clear()
    figures["cold_month_seconds"] = timed(at.run)
    figures["cached_rerun_seconds"] = timed(at.run)
    figures["period_switch_seconds"] = timed(
        lambda: at.selectbox(key="period").select_index(2).run())
    tenant = at.multiselect(key="tenants").options[0]
    figures["tenant_filter_seconds"] = timed(
        lambda: at.multiselect(key="tenants").set_value([tenant]).run())
    figures["quarter_seconds"] = timed(
        lambda: at.segmented_control(key="period_kind").set_value("quarter").run())
    assert not at.exception, [e.value for e in at.exception]
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def _warm(config: Any) -> None:
    from app import data
    from collectors.store import Store

    store = Store.open_existing(config.database, migrate=False)
    try:
        data.warm(store, data.kpi_config_for(config.kpi_config, config.throttled_is_failure),
                  config.slos, config.throttled_is_failure)
    finally:
        store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the store is kept")
    args = parser.parse_args()
    database = store(args.cache, args.months)
    figures = run(database)
    say(f"  {figures}")
    result = {
        "benchmark": "app_render", "months": args.months, "store": database,
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "figures": figures,
        "targets": {"cold_month_seconds": TARGET_COLD_SECONDS,
                    "cached_rerun_seconds": TARGET_SWITCH_SECONDS,
                    "period_switch_seconds": TARGET_SWITCH_SECONDS,
                    "tenant_filter_seconds": TARGET_SWITCH_SECONDS},
        "meets_targets": figures["cold_month_seconds"] < TARGET_COLD_SECONDS
        and all(figures[k] < TARGET_SWITCH_SECONDS for k in (
            "cached_rerun_seconds", "period_switch_seconds", "tenant_filter_seconds")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    raise SystemExit(main())
