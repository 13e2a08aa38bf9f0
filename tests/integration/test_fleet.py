"""A fleet as ARCHITECTURE.md scales it, on real servers: three simulated pods each behind
its own sidecar; a Prometheus in agent mode scrapes them and remote-writes to
VictoriaMetrics (the long-term store); a Prometheus server scrapes the same fleet, evaluates
the same rules and sends its alerts to Alertmanager running the routes of
deploy/alertmanager/alertmanager.yml, whose receivers are a webhook this test serves. The
server also remote-writes its recorded series (and only those: the agent ships the raw
samples), so dashboards reading recordings find them in the long-term store; vmalert on
VictoriaMetrics is the other way to get them.

- Every dashboard query and every recording rule's expression answers the same on
  VictoriaMetrics' Prometheus API as on the Prometheus server (same series; values within
  the difference one scrape makes), each asked over a window the fleet's history covers
  (20 s). Over a window longer than a series has lived the two differ by design: Prometheus
  divides the increase by the window, VictoriaMetrics by the time the series has existed
  (a pod 15 s old read 1.5 req/s on Prometheus and 6.0 on VictoriaMetrics over [1m]).
  Young series (a new pod, a tenant's first error) read higher on VictoriaMetrics until
  they are older than the window.
- A slow-engine spike on every pod fires the TTFT page; Alertmanager routes it by severity
  to the pager, one notification for the model however many pods and windows fire; when
  the spike ends a resolved notification follows.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from dashboards import panels
from llmkpi import processes
from llmkpi.loadgen import LoadSpec, run_load
from tests.integration.helpers import (
    BackgroundApps,
    PrometheusProc,
    SidecarProc,
    prometheus_binary,
    sidecar,
    simulator,
)
from tests.integration.test_live_stack import (
    generated_rules,
    grafana_substitute,
    single_engine_boards,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
PODS = 3
# Two scrapers sample the same counters up to a scrape interval (1 s) apart; over the
# 1-minute windows the dashboards use that moves a rate by at most ~1/60 plus VictoriaMetrics'
# different edge handling of rate(): values agree within 15 %, series exactly.
TOLERANCE = 0.15
WINDOW = "20s"  # shorter than the load before the comparison: every series older than it


def covered(expr: str) -> str:
    """The expression with each range selector's window set to WINDOW (subqueries kept)."""
    return re.sub(r"\[(\d+[smhdwy])+\]", f"[{WINDOW}]", expr)


def query_at(base: str, promql: str, at: float) -> list[dict[str, Any]]:
    q = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{base}/api/v1/query?{q}", timeout=30) as resp:
        doc = json.loads(resp.read())
    assert doc["status"] == "success", (promql, doc)
    result = doc["data"]["result"]
    if doc["data"]["resultType"] == "scalar":
        return [{"metric": {}, "value": result}]
    return list(result)


def series(result: list[dict[str, Any]]) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset((k, v) for k, v in item["metric"].items() if k != "__name__"):
            float(item["value"][1]) for item in result}


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-9 + TOLERANCE * max(abs(a), abs(b))


def compare(expr: str, prom: list[dict[str, Any]], vm: list[dict[str, Any]]) -> str | None:
    """None when both answers agree, else what differs."""
    left, right = series(prom), series(vm)
    if set(left) != set(right):
        only_prom = sorted(map(sorted, set(left) - set(right)))[:3]
        only_vm = sorted(map(sorted, set(right) - set(left)))[:3]
        return f"{expr}: series differ: Prometheus only {only_prom}, VictoriaMetrics only {only_vm}"
    bad = [(sorted(key), left[key], right[key]) for key in left
           if not close(left[key], right[key])]
    return f"{expr}: values differ {bad[:3]}" if bad else None


def drive(urls: list[str], seconds: float, seed: int) -> int:
    """Load on every pod at once (a thread each), the tenants equally busy so each one's
    series exist from the first seconds; the number of requests answered."""
    counts = [0] * len(urls)

    def one(index: int) -> None:
        spec = LoadSpec(target=urls[index], tenants=3, rps=3, duration=seconds,
                        seed=seed + index, prompt_median=200, output_median=40,
                        tenant_zipf=0.0)
        counts[index] = len(asyncio.run(run_load(spec, progress_out=None)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def set_profile(upstreams: list[str], profile: str) -> None:
    for upstream in upstreams:
        request = urllib.request.Request(
            f"{upstream}/admin/profile", method="POST", data=json.dumps(
                {"profile": profile}).encode(), headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()


def binary(name: str) -> str:
    import shutil

    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: `make test` installs it from Debian")
    return path


@contextmanager
def server(name: str, argv: list[str], ready: str, log_dir: Path) -> Iterator[str]:
    started = processes.start(name, argv, log_dir)
    with processes.running(started):
        processes.wait_http(ready, started, timeout=60)
        yield ready


DIFFERENCE = re.compile(r"clamp_min\((sum by \(\w+\) \(.*\)) - (sum by \(\w+\) \(.*\)), 0\)")


def terms(expr: str) -> list[str]:
    """A bad-events count is all requests less the good ones, two nearly equal rates: one
    request more in one store's window moves their small difference by a large share. Such
    a difference is compared term by term (its error is the terms' error)."""
    match = DIFFERENCE.fullmatch(expr)
    return [match.group(1), match.group(2)] if match else [expr]


def recording_expressions(rule_files: tuple[Path, ...]) -> list[str]:
    exprs = []
    for path in rule_files:
        for group in yaml.safe_load(path.read_text())["groups"]:
            exprs += [rule["expr"] for rule in group["rules"] if "record" in rule]
    return sorted(set(exprs))


class Webhook:
    """Alertmanager's receivers: every notification posted, by path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post("/{receiver}", self.post)
        # vmalert must notify somewhere; its alerts are the server's twins: dropped here
        self.app.router.add_post("/vmalert/api/v2/alerts", self.discard)

    async def discard(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    async def post(self, request: web.Request) -> web.Response:
        self.received.append((request.match_info["receiver"], await request.json()))
        return web.Response(text="ok")

    def wait(self, receiver: str, slo: str, status: str, timeout: float) -> dict[str, Any]:
        """The first notification to `receiver` telling that `slo`'s alert is `status`
        (a group's notification lists its resolved alerts too while others still fire)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, doc in list(self.received):
                if name == receiver and any(a["labels"].get("slo") == slo
                                            and a["status"] == status for a in doc["alerts"]):
                    return doc
            time.sleep(0.5)
        raise AssertionError(f"no {status} notification to {receiver}: {self.received}")


def alertmanager_config(webhook: str, path: Path) -> Path:
    """The shipped route tree, its receivers pointed at the test's webhook, its waits cut
    from seconds-to-minutes to a second so the test sees a notification soon."""
    doc = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in doc["receivers"]:
        for hook in receiver["webhook_configs"]:
            hook["url"] = f"{webhook}/{receiver['name']}"
    routes = [doc["route"], *doc["route"].get("routes", [])]
    for route in routes:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
    path.write_text(yaml.safe_dump(doc))
    return path


@dataclass
class Fleet:
    upstreams: list[str]
    sidecars: list[SidecarProc]
    prometheus: str
    victoria: str


@contextmanager
def fleet(tmp_path: Path, rule_files: tuple[Path, ...], webhook: str) -> Iterator[Fleet]:
    """The pods, their sidecars, VictoriaMetrics, the agent, Alertmanager and the server."""
    logs = tmp_path / "logs"
    with ExitStack() as stack:
        upstreams = [stack.enter_context(simulator(tmp_path, "h100-llama3-8b", seed))
                     for seed in range(1, PODS + 1)]
        sidecars = [stack.enter_context(sidecar(tmp_path, upstream)) for upstream in upstreams]
        targets = {f"pod-{i}": s.metrics_url.split("/")[2] for i, s in enumerate(sidecars)}
        # one job, as the PodMonitor makes it: each pod its own target with its pod label
        scrape = {"job_name": "llmkpi-sidecar", "static_configs": [
            {"targets": [address], "labels": {"pod": f"vllm-{name[-1]}"}}
            for name, address in targets.items()]}

        vm_port, am_port = processes.free_port(), processes.free_port()
        vm = stack.enter_context(server("victoria-metrics", [
            binary("victoria-metrics"), f"-storageDataPath={tmp_path / 'vm'}",
            f"-httpListenAddr=127.0.0.1:{vm_port}", "-retentionPeriod=1d",
            "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=WARN"],
            f"http://127.0.0.1:{vm_port}/health", logs)).removesuffix("/health")
        agent_config = tmp_path / "agent.yml"
        agent_config.write_text(json.dumps({
            "global": {"scrape_interval": "1s"}, "scrape_configs": [scrape],
            "remote_write": [{"url": f"{vm}/api/v1/write",
                              "queue_config": {"batch_send_deadline": "1s"}}]}))
        agent_port = processes.free_port()
        stack.enter_context(server("prometheus-agent", [
            prometheus_binary(), "--enable-feature=agent", f"--config.file={agent_config}",
            f"--storage.agent.path={tmp_path / 'agent'}", "--log.level=warn",
            f"--web.listen-address=127.0.0.1:{agent_port}"],
            f"http://127.0.0.1:{agent_port}/-/ready", logs))

        am_config = alertmanager_config(webhook, tmp_path / "alertmanager.yml")
        am = stack.enter_context(server("alertmanager", [
            binary("prometheus-alertmanager"), f"--config.file={am_config}",
            f"--storage.path={tmp_path / 'am'}", f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=", "--log.level=warn"],
            f"http://127.0.0.1:{am_port}/-/ready", logs)).removesuffix("/-/ready")

        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(p) for p in rule_files], "scrape_configs": [scrape],
                  "alerting": {"alertmanagers": [{"static_configs": [
                      {"targets": [am.removeprefix("http://")]}]}]},
                  # the recorded series (level:metric:operation names) go to the long-term
                  # store too; the raw samples come from the agent
                  "remote_write": [{"url": f"{vm}/api/v1/write",
                                    "queue_config": {"batch_send_deadline": "1s"},
                                    "write_relabel_configs": [{
                                        "source_labels": ["__name__"], "regex": ".+:.+",
                                        "action": "keep"}]}]}
        started, url = processes.start_prometheus(
            prometheus_binary(), config, tmp_path / "prometheus.yml", tmp_path / "tsdb", logs,
            "--log.level=warn")
        stack.enter_context(processes.running(started))
        processes.wait_http(f"{url}/-/ready", started, timeout=60)
        prom = PrometheusProc(url, started)
        prom.wait_scraped("llmkpi-sidecar")
        yield Fleet(upstreams, sidecars, url, vm)


def test_a_fleet_in_long_term_storage_with_routed_alerts(tmp_path: Path) -> None:
    rule_files = generated_rules(tmp_path)
    hooks = Webhook()
    apps = BackgroundApps()
    webhook = apps.serve(hooks.app)
    with fleet(tmp_path, rule_files, webhook) as stack:
        upstreams, sidecars, url, vm = (stack.upstreams, stack.sidecars, stack.prometheus,
                                        stack.victoria)

        # 1. Healthy load on every pod; 36 s in, while it goes on, the same questions to
        # both stores about a moment 5 s back (both have scraped and stored it by then).
        result: list[int] = []
        load = threading.Thread(target=lambda: result.append(
            drive([s.url for s in sidecars], 45, seed=10)))
        load.start()
        time.sleep(36)
        at = time.time() - 5
        queries = [(f"{name} / {title}", covered(grafana_substitute(expr)))
                   for name, text in single_engine_boards().items()
                   for title, expr in panels.panel_queries(json.loads(text))]
        queries += [(f"recording rule {i}", covered(term))
                    for i, expr in enumerate(recording_expressions(rule_files))
                    for term in terms(expr)]
        differing, answered = [], 0
        for label, expr in queries:
            left, right = query_at(url, expr, at), query_at(vm, expr, at)
            answered += bool(left)
            problem = compare(expr, left, right)
            if problem:
                differing.append(f"{label}: {problem}")
        load.join()
        served = result[0]
        print(f"{len(queries)} queries, {answered} with data on Prometheus; {served} requests")
        assert not differing, "\n".join(differing)
        assert answered > len(queries) // 2, "most queries should have data to compare"
        pods = {s["metric"]["pod"] for s in query_at(vm, "llmkpi_requests_total", at)}
        assert pods == {f"vllm-{i}" for i in range(PODS)}

        # 2. Every pod 10x slower: the TTFT page fires and reaches the pager, once per model.
        set_profile(upstreams, "slow")
        served += drive([s.url for s in sidecars], 15, seed=20)
        page = hooks.wait("pager", "ttft_live", "firing", timeout=60)
        assert page["groupLabels"]["alertname"] == "LlmkpiErrorBudgetBurnFast"
        assert set(page["groupLabels"]) == {"alertname", "model"}
        assert {a["labels"]["severity"] for a in page["alerts"]} == {"page"}
        assert {a["labels"]["model"] for a in page["alerts"]} == {page["groupLabels"]["model"]}
        pages = [d for n, d in hooks.received if n == "pager" and d["status"] == "firing"
                 and d["groupLabels"]["alertname"] == "LlmkpiErrorBudgetBurnFast"]
        assert {d["groupKey"] for d in pages} == {page["groupKey"]}, "one group per model"
        assert not [d for n, d in hooks.received if n == "tickets"
                    and any(a["labels"]["severity"] == "page" for a in d["alerts"])]

        # 3. The spike ends: a resolved notification follows for the live SLO (whose page
        # windows are 1 minute and 5 s; the shipped SLOs' hour-long windows still burn).
        set_profile(upstreams, "h100-llama3-8b")
        served += drive([s.url for s in sidecars], 10, seed=30)
        resolved = hooks.wait("pager", "ttft_live", "resolved", timeout=90)
        assert resolved["groupKey"] == page["groupKey"]
    apps.close()
