"""`make demo`: simulator + sidecar, a minute of multi-tenant load, a summary from /metrics."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from engine_shim.engine_metrics import parse_exposition
from engine_shim.tenancy import hash_api_key
from llmkpi import loadgen, processes
from llmkpi.settings import DEFAULT_SALT
from llmkpi.summary import format_summary, tenant_summary

DEMO_TENANTS = 8


def _alias_file(workdir: Path) -> Path:
    """Names for the demo keys, so the summary says tenant-0000 rather than a key hash."""
    path = workdir / "tenant-aliases.yaml"
    lines = ["version: 1", "tenants:"]
    for i in range(DEMO_TENANTS):
        lines.append(f"  tenant-{i:04d}: [{hash_api_key(loadgen.tenant_key(i), DEFAULT_SALT)}]")
    path.write_text("\n".join(lines) + "\n")
    return path


class EnginePeaks:
    """Polls the sidecar's /metrics once a second and keeps the fullest moments of the engine."""

    GAUGES = ("llmkpi_engine_kv_cache_usage_ratio", "llmkpi_engine_requests_running",
              "llmkpi_engine_requests_waiting")

    def __init__(self, metrics_url: str) -> None:
        self.url = metrics_url
        self.peak = dict.fromkeys(self.GAUGES, 0.0)
        self.preemptions = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EnginePeaks:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._poll()

    def _poll(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return
        for name, _labels, value in parse_exposition(text):
            if name in self.peak:
                self.peak[name] = max(self.peak[name], value)
            elif name == "llmkpi_engine_preemptions_total":
                self.preemptions = value

    def report(self) -> str:
        p = self.peak
        return (f"peak KV-cache usage {p[self.GAUGES[0]] * 100:.0f} %, peak running"
                f" {p[self.GAUGES[1]]:.0f}, peak waiting {p[self.GAUGES[2]]:.0f},"
                f" preemptions {self.preemptions:.0f}")


LIVE_POD = "vllm-0"  # the live sidecar serves as the demo company's H100 pod: its rows are priced


def _term_as_interrupt(_signum: int, _frame: object) -> None:
    signal.raise_signal(signal.SIGINT)


def demo_company(workdir: Path, months: int) -> str:
    """Generate and load the demo company once; later runs reuse the store it filled."""
    from llmkpi import demo_data

    database = str(workdir / "llmkpi.sqlite")
    done = workdir / "company" / f".loaded-{months}"
    if done.exists():
        print(f"demo company: reusing {database} ({months} months, loaded before)")
        return database
    print(f"demo company: generating {months} months of history into {database}")
    counts = demo_data.run(workdir / "company", database, months, seed=7,
                           end_month=demo_data.last_full_month())
    done.write_text(json.dumps(counts) + "\n")
    print("demo company: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return database


def run_demo(seconds: float, rps: float, workdir: Path, months: int = 12) -> int:
    # Ctrl-C and `kill PID` both end the demo and, through `processes.running`, every process
    # it started. The default SIGINT handler is restored (a parent shell may have left it
    # ignored, as for background jobs) because asyncio.run only cancels its tasks cleanly then.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _term_as_interrupt)
    workdir.mkdir(parents=True, exist_ok=True)
    database = demo_company(workdir, months)
    sim_port, sidecar_port, metrics_port = (processes.free_port() for _ in range(3))
    logs = workdir / "logs"
    sim = processes.start("simulator", ["simulate", "--port", str(sim_port),
                                        "--profile", "demo-small-cache", "--seed", "7"], logs)
    sidecar = processes.start("sidecar", [
        "sidecar", "--upstream", f"http://127.0.0.1:{sim_port}", "--port", str(sidecar_port),
        "--metrics-port", str(metrics_port), "--tenant-aliases", str(_alias_file(workdir)),
        "--records-out", str(workdir / "records.jsonl"), "--engine-poll-seconds", "1",
        "--ledger"], logs, env={"LLMKPI_DATABASE_URL": database, "LLMKPI_POD": LIVE_POD})
    (workdir / "demo.pids").write_text(
        "".join(f"{p.process.pid} {p.name}\n" for p in (sim, sidecar)))
    with processes.running(sim, sidecar):
        processes.wait_http(f"http://127.0.0.1:{sim_port}/health", sim)
        processes.wait_http(f"http://127.0.0.1:{sidecar_port}/health", sidecar)
        print(f"simulator  http://127.0.0.1:{sim_port}  (profile demo-small-cache)")
        print(f"sidecar    http://127.0.0.1:{sidecar_port}  -> simulator")
        print(f"metrics    http://127.0.0.1:{metrics_port}/metrics")
        print(f"records    {workdir / 'records.jsonl'}    logs {logs}/")
        print(f"store      {database}  (the demo company, and this run's requests as pod"
              f" {LIVE_POD})")
        print(f"load: {DEMO_TENANTS} tenants, {rps:g} req/s bursty, {seconds:g}s\n")
        spec = loadgen.LoadSpec(target=f"http://127.0.0.1:{sidecar_port}",
                                tenants=DEMO_TENANTS, rps=rps, duration=seconds, seed=7,
                                pattern="bursty")
        with EnginePeaks(f"http://127.0.0.1:{metrics_port}/metrics") as peaks:
            results = asyncio.run(loadgen.run_load(spec, progress_out=sys.stdout))
        print("\nWhat the clients measured (the load generator's warm-up request is not shown):")
        print(loadgen.format_table(loadgen.summary_rows(results)))
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
            text = resp.read().decode()
        print("\nWhat the sidecar exported (read back from its /metrics):")
        print(format_summary(tenant_summary(text)))
        print("\nHow full the engine got (the sidecar polls its vLLM-style /metrics):")
        print("  " + peaks.report())
    print("\nstopped simulator and sidecar")
    print_kpis(database)
    print(f"\nnext: .venv/bin/llmkpi kpi report --period quarter --database {database}"
          f"\n      .venv/bin/llmkpi cost report --database {database}"
          "   (GPU bill by model, tenant and feature)"
          f"\n      .venv/bin/llmkpi dashboards build --out {workdir}/dashboards"
          "   (Grafana JSON; provisioning in deploy/grafana)"
          f"\n      .venv/bin/llmkpi alerts build --out {workdir}/rules"
          "   (Prometheus rules from alerts/slo.yaml)")
    return 0


def print_kpis(database: str) -> None:
    """The 19 mappings for the last full month of the demo company."""
    from collectors.store import Store
    from kpi_mapping import report
    from kpi_mapping.config import KpiConfig
    from kpi_mapping.periods import period_containing

    period = period_containing("month", datetime.now(UTC).date()).previous()
    store = Store.open(database)
    try:
        result = report.build(store, period, KpiConfig())
    finally:
        store.close()
    print("\n" + report.format_table(result, KpiConfig()))
