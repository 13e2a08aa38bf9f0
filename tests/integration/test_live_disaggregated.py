"""The Disaggregated serving dashboard and its alerts against a live P/D stack: the simulator
with a prefill and a decode engine (every 4th KV transfer failing, per-request metrics on),
a sidecar in front of each pod (LLMKPI_ROLE decode and prefill) and the endpoint-picker
stand-in, all scraped by a real Prometheus under load. Every query of the dashboard returns
data and every serving rule evaluates."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from alerts import build as alert_build
from alerts import config as alert_config
from app import live
from dashboards import build as dashboard_build
from dashboards import panels
from llmkpi.commands.app import live_queries
from tests.integration.helpers import prometheus, sidecar, simulator
from tests.integration.test_live_stack import DISAGGREGATED, drive, grafana_substitute

pytestmark = pytest.mark.integration


def test_the_disaggregated_dashboard_on_a_live_pd_stack(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    alert_build.write(rules_dir, alert_config.load(alert_build.DEFAULT_CONFIG), say=print)
    serving_rules = rules_dir / "llmkpi-serving.rules.yml"
    with simulator(tmp_path, "h100-llama3-8b", 5, "--pd", "1", "--per-request-metrics",
                   "--kv-fail-every", "4", "--kv-bandwidth-gbps", "5") as upstream, \
            sidecar(tmp_path, upstream, env={"LLMKPI_ROLE": "decode"}) as decode, \
            sidecar(tmp_path, upstream + "/prefill", env={"LLMKPI_ROLE": "prefill"}) as prefill:
        address = upstream.removeprefix("http://")
        targets = {"llmkpi-sidecar": decode.metrics_url.split("/")[2],
                   "llmkpi-sidecar-prefill": prefill.metrics_url.split("/")[2],
                   "epp": f"{address}/epp/metrics"}
        labels = {"llmkpi-sidecar": {"pod": "decode-0"},
                  "llmkpi-sidecar-prefill": {"pod": "prefill-0"}}
        with prometheus(tmp_path, targets, (serving_rules,), labels=labels) as prom:
            for job in targets:
                prom.wait_scraped(job)
            served = drive(decode.url, 15, seed=3)
            time.sleep(3)
            text = dashboard_build.render_all()[DISAGGREGATED]
            empty, checked = [], 0
            for title, expr in panels.panel_queries(json.loads(text)):
                if title.startswith("annotation "):
                    continue
                checked += 1
                if not prom.query(grafana_substitute(expr)):
                    empty.append(f"{title}: {expr}")
            assert not empty, "\n".join(empty)
            assert checked >= 15, checked
            roles = {r["metric"]["role"] for r in prom.query("llmkpi_engine_info")}
            assert roles == {"decode", "prefill"}
            # the transfers the decode side counted, the leases the prefill side lost
            failed = prom.query("sum(llmkpi_engine_kv_transfer_failures_total)")
            expired = prom.query("sum(llmkpi_engine_kv_expired_requests_total)")
            assert float(failed[0]["value"][1]) > 0 and float(expired[0]["value"][1]) > 0
            # the page's live TTFT split: every part known, the parts add up to the mean
            split = {v.query.label: v.value for v in live.read(prom.url, live_queries())
                     if v.query.group == "ttft"}
            assert all(value is not None and value > 0 for value in split.values()), split
            ttft, queue, engine_prefill, before = (split[k] for k in (
                "Mean TTFT (15 m)", "Engine queue", "Engine prefill", "Before the engine"))
            assert before == pytest.approx(ttft - queue - engine_prefill, abs=1e-3)
            for group in prom.rule_groups():
                for rule in group["rules"]:
                    assert rule["health"] == "ok", (rule.get("name"), rule.get("lastError"))
    print(f"{checked} disaggregated dashboard queries answered after {served} requests")
