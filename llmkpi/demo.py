"""`make demo`: the demo company, simulator + sidecar under a minute of multi-tenant load,
Prometheus with the generated rules, the KPI and cost reports, and the executive view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
import urllib.request
import webbrowser
from pathlib import Path

from engine_shim.engine_metrics import parse_exposition
from engine_shim.tenancy import hash_api_key
from llmkpi import demo_stack, loadgen, processes
from llmkpi import settings as settings_mod
from llmkpi.settings import DEFAULT_SALT
from llmkpi.summary import format_summary, tenant_summary
from specs import catalog

DEMO_TENANTS = 8
DEMO_VERSION = 2  # bumped when the demo company changes: an older store is written again
SLO_TTFT_MS = 500  # alerts/slo.yaml: the ttft threshold the demo compares with


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

    GAUGES = (catalog.ENGINE_KV_CACHE_USAGE.name, catalog.ENGINE_REQUESTS_RUNNING.name,
              catalog.ENGINE_REQUESTS_WAITING.name)

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
            elif name == catalog.ENGINE_PREEMPTIONS.name:
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
    done = workdir / "company" / f".loaded-{months}-v{DEMO_VERSION}"
    if done.exists():
        print(f"demo company: reusing {database} ({months} months, loaded before)")
        return database
    for suffix in ("", "-wal", "-shm"):  # a store from an older generator or a stopped run
        Path(database + suffix).unlink(missing_ok=True)
    print(f"demo company: generating {months} months of history into {database}")
    counts = demo_data.run(workdir / "company", database, months, seed=7,
                           end_month=demo_data.last_full_month())
    done.write_text(json.dumps(counts) + "\n")
    print("demo company: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return database


# --serving pd: one prefill engine in front of the decode engine, the KV crossing at 25 GB/s,
# one transfer in 20 failing, and the engine's per-request timings for the TTFT breakdown
PD_SIMULATOR = ("--pd", "1", "--kv-fail-every", "20", "--per-request-metrics")


def run_demo(seconds: float, rps: float, workdir: Path, months: int = 12,
             headless: bool = False, serving: str = "single") -> int:
    # Ctrl-C and `kill PID` both end the demo and, through `processes.running`, every process
    # it started. The default SIGINT handler is restored (a parent shell may have left it
    # ignored, as for background jobs) because asyncio.run only cancels its tasks cleanly then.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _term_as_interrupt)
    workdir.mkdir(parents=True, exist_ok=True)
    database = demo_company(workdir, months)
    rules = demo_stack.build_generated(workdir)
    sim_port, sidecar_port, metrics_port, kpi_port = (processes.free_port() for _ in range(4))
    logs = workdir / "logs"
    started, targets = _serving(workdir, database, logs, serving == "pd",
                                (sim_port, sidecar_port, metrics_port))
    pd = serving == "pd"
    kpi_config = workdir / "company" / "kpi.yaml"
    started.append(processes.start("kpi-serve", [
        "kpi", "serve", "--database", database, "--port", str(kpi_port), "--interval", "60",
        "--config", str(kpi_config)], logs))
    prometheus = demo_stack.start_prometheus(workdir, {
        **targets, "llmkpi-kpi": (f"127.0.0.1:{kpi_port}", {})}, rules, logs)
    if prometheus is not None:
        started.append(prometheus[0])
    _write_pids(workdir, started)
    try:
        sim, sidecar = started[0], started[1]
        processes.wait_http(f"http://127.0.0.1:{sim_port}/health", sim)
        processes.wait_http(f"http://127.0.0.1:{sidecar_port}/health", sidecar)
        if prometheus is not None:
            processes.wait_http(f"{prometheus[1]}/-/ready", prometheus[0])
        print(f"simulator  http://127.0.0.1:{sim_port}  (profile demo-live"
              f"{'; prefill/decode disaggregated, see Disaggregated serving' if pd else ''})")
        print(f"sidecar    http://127.0.0.1:{sidecar_port}  -> simulator")
        print(f"metrics    http://127.0.0.1:{metrics_port}/metrics")
        print(f"records    {workdir / 'records.jsonl'}    logs {logs}/")
        print(f"store      {database}  (the demo company, and this run's requests as pod"
              f" {LIVE_POD})")
        spec = loadgen.LoadSpec(target=f"http://127.0.0.1:{sidecar_port}",
                                tenants=DEMO_TENANTS, rps=rps, duration=seconds, seed=7,
                                pattern="spike")
        spike = loadgen.spike_window(spec)
        assert spike is not None
        print(f"load: {DEMO_TENANTS} tenants, {rps:g} req/s for {seconds:g}s, with a deliberate"
              f" spike to {rps * loadgen.SPIKE_FACTOR:g} req/s from {spike[0]:.0f}s to"
              f" {spike[1]:.0f}s: it fills the engine's KV cache, first tokens queue and the TTFT"
              " alerts may fire; outside it the traffic meets alerts/slo.yaml\n")
        with EnginePeaks(f"http://127.0.0.1:{metrics_port}/metrics") as peaks:
            results = asyncio.run(loadgen.run_load(spec, progress_out=sys.stdout))
        _print_measured(results, metrics_port, peaks)
        print("  " + _spike_report(results, spike))
        reports = demo_stack.write_reports(database, workdir, kpi_config)
        page = _start_page(workdir, database, prometheus[1] if prometheus else None, started,
                           kpi_config)
        _print_urls(page, prometheus[1] if prometheus else None, kpi_port, workdir, reports,
                    database)
        status = demo_stack.page_answers(page)
        if headless:
            print(f"\npage answered (HTTP {status}); headless run: stopping everything")
            return 0
        if settings_mod.has_display():
            with contextlib.suppress(Exception):  # no browser to open is not a failure
                webbrowser.open(page)
        return _wait_for_an_exit(started)
    except KeyboardInterrupt:
        print("\nstopping: Ctrl-C")
        return 130
    finally:  # everything started, the page included (it joins the list late)
        for item in reversed(started):
            processes.stop(item)
        (workdir / "demo.pids").unlink(missing_ok=True)
        print("stopped: " + ", ".join(f"{p.name} (pid {p.process.pid})" for p in started))



PREFILL_POD = LIVE_POD + "-prefill"


def price_prefill_pod(database: str) -> None:
    """--serving pd: the prefill pod is priced as the live pod is (its latest GPU inventory
    row's GPUs and price), from the start of this hour: it did not exist before, so the
    demo company's history keeps its bills. A later run keeps the first run's row."""
    from datetime import UTC, datetime

    from sqlmodel import select

    from collectors.store import Store
    from collectors.tables import GpuAllocation

    store = Store.open_existing(database)
    try:
        with store.write_session() as session:
            if session.exec(select(GpuAllocation).where(
                    GpuAllocation.pod == PREFILL_POD)).first() is not None:
                return
            rows = session.exec(select(GpuAllocation).where(
                GpuAllocation.pod == LIVE_POD)).all()
            if not rows:
                return
            latest = max(rows, key=lambda row: row.valid_from)
            hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            store.upsert(session, GpuAllocation, [{**latest.model_dump(), "pod": PREFILL_POD,
                                                  "valid_from": hour, "valid_to": None}])
            session.commit()
    finally:
        store.close()


def _serving(workdir: Path, database: str, logs: Path, pd: bool,
             ports: tuple[int, int, int]) -> tuple[list[processes.Started],
                                                   dict[str, tuple[str, dict[str, str]]]]:
    """The simulator and the sidecar in front (with --serving pd, a prefill engine too, its
    own sidecar in the prefill path as llm-d's routing sidecar calls it, and the gateway's
    endpoint picker), and what Prometheus scrapes of them."""
    sim_port, sidecar_port, metrics_port = ports
    prefill_port, prefill_metrics = processes.free_port(), processes.free_port()
    via = ("--prefill-via", f"http://127.0.0.1:{prefill_port}") if pd else ()
    started = [processes.start("simulator", ["simulate", "--port", str(sim_port),
                                             "--profile", "demo-live", "--seed", "7",
                                             *(PD_SIMULATOR if pd else ()), *via], logs)]
    started.append(processes.start("sidecar", [
        "sidecar", "--upstream", f"http://127.0.0.1:{sim_port}", "--port", str(sidecar_port),
        "--metrics-port", str(metrics_port), "--tenant-aliases", str(_alias_file(workdir)),
        "--records-out", str(workdir / "records.jsonl"), "--engine-poll-seconds", "1",
        "--journal", str(workdir / "journal"), "--ledger"], logs,
        env={"LLMKPI_DATABASE_URL": database, "LLMKPI_POD": LIVE_POD,
             **({"LLMKPI_ROLE": "decode"} if pd else {})}))
    targets = {"llmkpi-sidecar": (f"127.0.0.1:{metrics_port}", {"pod": LIVE_POD})}
    if pd:  # the prefill pod's sidecar (its prefills, its engine) and the gateway's picker
        price_prefill_pod(database)
        started.append(processes.start("sidecar-prefill", [
            "sidecar", "--upstream", f"http://127.0.0.1:{sim_port}/prefill", "--port",
            str(prefill_port), "--metrics-port", str(prefill_metrics),
            "--tenant-aliases", str(_alias_file(workdir)), "--engine-poll-seconds", "1",
            "--journal", str(workdir / "journal-prefill"), "--ledger"], logs,
            env={"LLMKPI_DATABASE_URL": database, "LLMKPI_POD": PREFILL_POD,
                 "LLMKPI_ROLE": "prefill"}))
        targets["llmkpi-sidecar-prefill"] = (f"127.0.0.1:{prefill_metrics}",
                                             {"pod": PREFILL_POD})
        targets["epp"] = (f"127.0.0.1:{sim_port}/epp/metrics", {})
    return started, targets

def _print_measured(results: list[loadgen.ClientResult], metrics_port: int,
                    peaks: EnginePeaks) -> None:
    print("\nWhat the clients measured (the load generator's warm-up request is not shown):")
    print(loadgen.format_table(loadgen.summary_rows(results)))
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
        text = resp.read().decode()
    print("\nWhat the sidecar exported (read back from its /metrics):")
    print(format_summary(tenant_summary(text)))
    print("\nHow full the engine got (the sidecar polls its vLLM-style /metrics):")
    print("  " + peaks.report())


def _print_urls(page: str, prometheus: str | None, kpi_port: int, workdir: Path,
                reports: dict[str, Path], database: str) -> None:
    print(f"\nexecutive view  {page}   north star, the 19 KPIs, cost per token, serving"
          " health; pick week/month/quarter and filter by tenant or model in the sidebar")
    if prometheus is not None:
        # Prometheus 2.x from Debian serves its web UI under /classic/ (/alerts is a 404)
        print(f"prometheus      {prometheus}/classic/alerts   the generated rules live; "
              f"{prometheus}/classic/graph for queries")
    print(f"kpi gauges      http://127.0.0.1:{kpi_port}/metrics")
    print(f"dashboards      {workdir / 'dashboards'}  (import into Grafana, or provision"
          " with deploy/grafana)")
    print(f"reports         {reports['kpi']}  {reports['cost']}")
    print(f"next: .venv/bin/llmkpi kpi report --period quarter --database {database}"
          f"\n      .venv/bin/llmkpi cost report --database {database}")


def _p99(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000:,.0f} ms"


RECOVERY_SECONDS = 10.0  # the queue the spike left drains in about this long


def _spike_report(results: list[loadgen.ClientResult], spike: tuple[float, float]) -> str:
    """Client-measured TTFT p99 before the spike, during it (and while its queue drains),
    and after, beside the SLO's threshold."""
    def ttfts(lo: float, hi: float) -> list[float]:
        return [r.ttft for r in results if r.ttft is not None and lo <= r.planned_at < hi]

    drained = spike[1] + RECOVERY_SECONDS
    return (f"TTFT p99 before the spike {_p99(ttfts(0, spike[0]))}, during it and the"
            f" {RECOVERY_SECONDS:g}s after {_p99(ttfts(spike[0], drained))}, then"
            f" {_p99(ttfts(drained, float('inf')))} (the TTFT SLO's threshold in"
            f" alerts/slo.yaml: {SLO_TTFT_MS:,} ms)")


def _wait_for_an_exit(started: list[processes.Started]) -> int:
    print("\nCtrl-C stops everything this demo started.")
    while all(p.process.poll() is None for p in started):
        time.sleep(1)
    gone = next(p for p in started if p.process.poll() is not None)
    print(f"{gone.name} exited ({gone.process.returncode}); stopping the rest:\n"
          f"{gone.log_tail(10)}")
    return 1


def _write_pids(workdir: Path, started: list[processes.Started]) -> None:
    (workdir / "demo.pids").write_text(
        "".join(f"{p.process.pid} {p.name}\n" for p in started))


def _start_page(workdir: Path, database: str, prometheus: str | None,
                started: list[processes.Started], kpi_config: Path) -> str:
    port = demo_stack.app_port()
    args = ["app", "--database", database, "--port", str(port), "--kpi-config",
            str(kpi_config)]
    if prometheus:
        args += ["--prometheus-url", prometheus]
    page = processes.start("app", args, workdir / "logs")
    started.append(page)  # the demo's `finally` stops what is in the list
    _write_pids(workdir, started)
    processes.wait_http(f"http://127.0.0.1:{port}/_stcore/health", page, timeout=90)
    return f"http://127.0.0.1:{port}"
