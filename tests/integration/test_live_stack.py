"""The generated dashboards and rules against a live stack: a real Prometheus loads the rules
and scrapes the sidecar (in front of the simulator, under load from the load generator), the
simulated engine's plugin metrics (queue time, which only the engine knows) and `llmkpi kpi
serve` (on a demo company). Every dashboard query returns data, every rule
evaluates, and a slow engine makes the TTFT burn-rate alert fire."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alerts import build as alert_build
from alerts import config as alert_config
from collectors.demo_company.load import load
from collectors.store import Store
from dashboards import build as dashboard_build
from dashboards import panels
from llmkpi import processes
from llmkpi.demo_data import make
from llmkpi.loadgen import LoadSpec, run_load
from specs import catalog
from tests.integration.helpers import PrometheusProc, prometheus, sidecar, simulator

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KPI_CONFIG = ROOT / "tests/golden/dashboards/kpi-config/kpi.yaml"
DISAGGREGATED = "llmkpi-disaggregated.json"
# A 12-hour period scales the windows by 1/60: the fast page pair is 1 minute and 5 seconds.
LIVE_SLO = """\
version: 1
slos:
  - name: ttft_live
    sli: ttft
    threshold_seconds: 0.1
    objective: 0.99
    period: 12h
"""
# What Grafana substitutes before it sends a query.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m"}
KPI_GAUGES = {catalog.KPI_CEO_VALUE.name: "ceo", catalog.KPI_CTO_VALUE.name: "cto",
              catalog.KPI_BAND.name: "band"}


def grafana_substitute(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$[a-z_]+", ".*", expr)  # every template variable on "All"


def single_engine_boards() -> dict[str, str]:
    """Every dashboard but the disaggregated one (its stack: test_live_disaggregated.py)."""
    return {name: text for name, text in dashboard_build.render_all().items()
            if name != DISAGGREGATED}


def kpi_report(database: Path) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "llmkpi", "kpi", "report", "--at", "2026-10",
                             "--format", "json", "--config", str(KPI_CONFIG), "--database",
                             str(database)], capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


def expected_empty(expr: str, report: dict[str, Any]) -> bool:
    """A KPI panel is empty exactly where the report has no number for it."""
    match = re.fullmatch(r'(llmkpi_kpi_\w+)\{mapping="(\d+)"\}', expr)
    if match is None:
        return False
    row = report["mappings"][int(match.group(2)) - 1]
    side = KPI_GAUGES[match.group(1)]
    return (row["band"] in (None, "-")) if side == "band" else row[side]["value"] is None


def firing(prom: PrometheusProc, slo: str) -> list[dict[str, Any]]:
    return prom.query(f'ALERTS{{alertname="LlmkpiErrorBudgetBurnFast",slo="{slo}",'
                      f'alertstate="firing"}}')


def drive(url: str, seconds: float, seed: int) -> int:
    spec = LoadSpec(target=url, tenants=3, rps=4, duration=seconds, seed=seed,
                    prompt_median=200, output_median=40)
    return len(asyncio.run(run_load(spec, progress_out=None)))


def generated_rules(tmp_path: Path) -> tuple[Path, ...]:
    """The shipped rules, and a 12-hour TTFT SLO whose fast window is a minute."""
    rules_dir = tmp_path / "rules"
    alert_build.write(rules_dir, alert_config.load(alert_build.DEFAULT_CONFIG), say=print)
    live_config = tmp_path / "live-slo.yaml"
    live_config.write_text(LIVE_SLO)
    live_rules = tmp_path / "live"
    alert_build.write(live_rules, alert_config.load(live_config), say=print)
    return (*sorted(rules_dir.glob("*.yml")), live_rules / "llmkpi-slo.rules.yml")


def demo_store(tmp_path: Path) -> Path:
    database = tmp_path / "company.sqlite"
    store = Store.open(str(database))
    load(store, make(tmp_path / "company", 4, 5, date(2026, 10, 1), base_per_day=40,
                         raw_days=None),
         say=lambda _line: None)
    store.close()
    return database


def test_dashboards_and_rules_on_a_live_stack(tmp_path: Path) -> None:
    rule_files = generated_rules(tmp_path)
    database = demo_store(tmp_path)
    report = kpi_report(database)
    kpi_port = processes.free_port()
    kpi = processes.start(f"kpi-serve-{kpi_port}", [
        "kpi", "serve", "--at", "2026-10", "--port", str(kpi_port), "--interval", "60",
        "--config", str(KPI_CONFIG), "--database", str(database)], tmp_path / "logs")

    plugin_port = processes.free_port()
    with processes.running(kpi), simulator(tmp_path, "h100-llama3-8b", 3,
                                           "--plugin-metrics-port", str(plugin_port)
                                           ) as upstream, \
            sidecar(tmp_path, upstream) as proc:
        processes.wait_http(f"http://127.0.0.1:{kpi_port}/metrics", kpi, timeout=120)
        targets = {"llmkpi-sidecar": proc.metrics_url.split("/")[2],
                   "llmkpi-plugin": f"127.0.0.1:{plugin_port}",
                   "llmkpi-kpi": f"127.0.0.1:{kpi_port}"}
        pod = {"pod": "vllm-0"}
        with prometheus(tmp_path, targets, rule_files,
                        labels={"llmkpi-sidecar": pod, "llmkpi-plugin": pod}) as prom:
            prom.wait_scraped("llmkpi-sidecar")
            prom.wait_scraped("llmkpi-plugin")
            prom.wait_scraped("llmkpi-kpi")
            served = drive(proc.url, 20, seed=1)
            time.sleep(3)  # a few more scrapes and rule evaluations

            # Every query of every committed dashboard, as Grafana would send it.
            empty, checked, not_applicable = [], 0, []
            for name, text in single_engine_boards().items():
                for title, expr in panels.panel_queries(json.loads(text)):
                    result = prom.query(grafana_substitute(expr))
                    checked += 1
                    if title.startswith("annotation "):  # events: empty until one happens
                        continue
                    if expected_empty(expr, report):
                        not_applicable.append(expr)
                    if bool(result) == expected_empty(expr, report):
                        empty.append(f"{name} / {title}: {expr} -> {result}")
            assert not empty, "\n".join(empty)
            assert checked > 100 and len(not_applicable) < 10, (checked, not_applicable)
            # the rollout annotation watches the sidecars' request counters reset: they exist
            assert prom.query(panels.ROLLOUT_SERIES)
            print(f"{checked} dashboard queries answered; no number in the report for"
                  f" {not_applicable}")

            # Every rule healthy; every recording rule's series there.
            groups = prom.rule_groups()
            assert {Path(g["file"]).name for g in groups} >= {p.name for p in rule_files}
            for group in groups:
                for rule in group["rules"]:
                    assert rule["health"] == "ok", (rule.get("name"), rule.get("lastError"))
                    if rule["type"] == "recording":
                        selector = ",".join(f'{k}="{v}"' for k, v in
                                            sorted(rule.get("labels", {}).items()))
                        found = prom.query(f'{{__name__="{rule["name"]}",{selector}}}'
                                           if selector else rule["name"])
                        assert found, f"{rule['name']}{{{selector}}} recorded nothing"
            assert not firing(prom, "ttft_live"), "the healthy engine already pages"

            # A degraded engine: every step 10x slower. The fast pair (1 min and 5 s) pages.
            request = urllib.request.Request(f"{upstream}/admin/profile", method="POST",
                                             data=b'{"profile": "slow"}',
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10).read()
            switched = time.monotonic()
            served += drive(proc.url, 15, seed=2)
            deadline = time.monotonic() + 60
            while not firing(prom, "ttft_live") and time.monotonic() < deadline:
                time.sleep(1)
            alerts = firing(prom, "ttft_live")
            burn = prom.query('llmkpi_slo:burn_rate{slo="ttft_live",window="5s"}')
            print(f"page firing {time.monotonic() - switched:.0f} s after the switch;"
                  f" 5 s burn rate {burn[0]['value'][1] if burn else None}")
    assert alerts, f"no page after {served} requests; burn rate {burn}"
    assert alerts[0]["metric"]["severity"] == "page"
    assert alerts[0]["metric"]["model"]
