"""Real processes for integration tests (simulator, sidecar, Prometheus), in-process sidecar."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine_shim.engine_metrics import parse_exposition
from engine_shim.proxy import Sidecar, SidecarConfig
from engine_shim.records import EngineSnapshot, RequestRecord
from engine_shim.tenancy import TenantResolver, TenantTrust
from llmkpi import processes


@dataclass
class SidecarProc:
    url: str
    metrics_url: str
    records_path: Path
    started: processes.Started

    def records(self, expect: int = 0, timeout: float = 10.0) -> list[RequestRecord]:
        """Records written so far; waits until at least `expect` are on disk."""
        deadline = time.monotonic() + timeout
        while True:
            lines = []
            if self.records_path.exists():
                lines = self.records_path.read_text().splitlines()
            if len(lines) >= expect or time.monotonic() > deadline:
                return [RequestRecord.from_dict(json.loads(x)) for x in lines]
            time.sleep(0.05)

    def metrics_text(self, requests: int = 0, timeout: float = 10.0) -> str:
        """The sidecar's exposition; waits until it counts at least `requests` requests.

        Each sink has its own worker, so the records file can be complete a moment before
        the Prometheus sink has counted the last request.
        """
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(self.metrics_url) as resp:
                text = str(resp.read().decode())
            counted = sum(v for n, _, v in parse_exposition(text)
                          if n == "llmkpi_requests_total")
            if counted >= requests or time.monotonic() > deadline:
                return text
            time.sleep(0.05)


@contextlib.contextmanager
def simulator(tmp: Path, profile: str = "h100-llama3-8b", seed: int = 1,
              *extra: str) -> Iterator[str]:
    port = processes.free_port()
    started = processes.start(f"simulator-{port}", ["simulate", "--port", str(port),
                                                    "--profile", profile, "--seed", str(seed),
                                                    *extra], tmp / "logs")
    with processes.running(started):
        processes.wait_http(f"http://127.0.0.1:{port}/health", started)
        yield f"http://127.0.0.1:{port}"


LOOPBACK = "127.0.0.1/32"
DATA_PLANE = {"name": "python"}  # which data plane `sidecar` starts (named on its command line)


@contextlib.contextmanager
def sidecar(tmp: Path, upstream: str, *extra: str,
            env: dict[str, str] | None = None, port: int | None = None) -> Iterator[SidecarProc]:
    port, metrics_port = port or processes.free_port(), processes.free_port()
    records = tmp / f"records-{port}.jsonl"
    plane: tuple[str, ...] = () if "--data-plane" in extra else ("--data-plane",
                                                                  DATA_PLANE["name"])
    if plane == ("--data-plane", "nginx") and "--journal" not in extra:  # conftest.py chose it
        plane += ("--journal", str(tmp / f"journal-{port}"))
    # the test client stands for a trusted gateway unless a test says otherwise
    env = {"LLMKPI_TRUSTED_NETWORKS": LOOPBACK, **(env or {})}
    started = processes.start(f"sidecar-{port}", [
        "sidecar", "--upstream", upstream, "--port", str(port), "--metrics-port",
        str(metrics_port), "--records-out", str(records), "--engine-poll-seconds", "0.5",
        *plane, *extra], tmp / "logs", env=env)
    with processes.running(started):
        if "--web-config-file" not in extra:  # protected /metrics: the test checks it itself
            processes.wait_http(f"http://127.0.0.1:{metrics_port}/metrics", started)
        processes.wait_http(f"http://127.0.0.1:{port}/v1/models", started)
        yield SidecarProc(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics",
                          records, started)


class ListSink:
    name = "list"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.snapshots: list[EngineSnapshot] = []

    def record(self, record: RequestRecord) -> None:
        self.records.append(record)

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        self.snapshots.append(snapshot)

    def close(self) -> None:
        pass


@contextlib.asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    port = processes.free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def sidecar_in_process(upstream: str, sink: ListSink, salt: str = "test",
                             trusted: str = LOOPBACK) -> AsyncIterator[str]:
    """A sidecar whose records land in `sink`: the Python data plane in this process, or
    (the data_plane fixture chose nginx) nginx + Lua as a child, its journal read by a
    tailer in this process into `sink` (everything is in the sink once this exits)."""
    if DATA_PLANE["name"] == "nginx":
        async with _nginx_in_process(upstream, sink, salt, trusted) as url:
            yield url
        return
    config = SidecarConfig(upstream=upstream, engine_poll_interval=0)
    app = Sidecar(config, sink, TenantResolver(salt, trust=TenantTrust.parse(trusted))
                  ).build_app()
    async with serve_app(app) as url:
        yield url


@contextlib.asynccontextmanager
async def _nginx_in_process(upstream: str, sink: ListSink, salt: str, trusted: str
                            ) -> AsyncIterator[str]:
    import tempfile

    from engine_shim.nginx_plane import NginxConfig, NginxPlane
    from engine_shim.tailer import Tailer, VolatileConsumer

    folder = Path(tempfile.mkdtemp(prefix="llmkpi-test-journal-"))
    port = processes.free_port()
    plane = NginxPlane(NginxConfig(upstream=upstream, host="127.0.0.1", port=port,
                                   journal=folder, salt=salt, trusted_networks=tuple(
                                       str(n) for n in TenantTrust.parse(trusted).networks)))
    await asyncio.get_running_loop().run_in_executor(None, plane.start)
    tailer = Tailer(folder, [VolatileConsumer(sink, folder)], poll=0.005, settle=0.2)
    tailer.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.get_running_loop().run_in_executor(None, plane.stop)
        tailer.close()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class PrometheusProc:
    url: str
    started: processes.Started

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}") as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def exemplars(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql, "start": start, "end": end})
        with urllib.request.urlopen(f"{self.url}/api/v1/query_exemplars?{q}") as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return list(doc["data"])

    def rule_groups(self) -> list[dict[str, Any]]:
        """Every loaded rule group with each rule's health, last error and evaluation time."""
        with urllib.request.urlopen(f"{self.url}/api/v1/rules") as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return list(doc["data"]["groups"])

    def wait_scraped(self, job: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(f'up{{job="{job}"}} == 1'):
                return
            time.sleep(0.25)
        raise TimeoutError(f"Prometheus never scraped job {job}\n{self.started.log_tail()}")


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("the prometheus binary is missing: `make test` installs the Debian package")
    return path


@contextlib.contextmanager
def prometheus(tmp: Path, targets: dict[str, str], rule_files: tuple[Path, ...] = (),
               interval: str = "1s", labels: dict[str, dict[str, str]] | None = None
               ) -> Iterator[PrometheusProc]:
    """A real Prometheus server on a free loopback port scraping `targets` (job -> host:port),
    adding `labels[job]` to a job's series as service discovery would (the pod name)."""
    config = processes.prometheus_config(targets, rule_files, interval, labels)
    started, url = processes.start_prometheus(
        prometheus_binary(), config, tmp / "prometheus.yml", tmp / "tsdb", tmp / "logs",
        "--enable-feature=exemplar-storage", "--log.level=warn")
    with processes.running(started):
        processes.wait_http(f"{url}/-/ready", started, timeout=60)
        yield PrometheusProc(url, started)


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


class BackgroundApps:
    """Serves aiohttp apps from a loop on a background thread, for tests whose code is sync."""

    def __init__(self) -> None:
        import asyncio
        import threading

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runners: list[web.AppRunner] = []

    def serve(self, app: web.Application) -> str:
        import asyncio

        async def start() -> str:
            runner = web.AppRunner(app)
            await runner.setup()
            port = processes.free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            self._runners.append(runner)
            return f"http://127.0.0.1:{port}"

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def close(self) -> None:
        import asyncio

        async def stop() -> None:
            for runner in self._runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
