"""`llmkpi simulate --plugin-metrics-port`: the simulated engine hands each finished request
to the vLLM plugin's own conversion, so queue time (invisible to a sidecar) gets exported."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest

from llmkpi import processes
from llmkpi.loadgen import LoadSpec, run_load
from specs import catalog
from tests.integration.helpers import simulator

pytestmark = pytest.mark.integration


def samples(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_plugin_metrics_agree_with_the_engines_own(tmp_path: Path) -> None:
    port = processes.free_port()
    with simulator(tmp_path, "demo-small-cache", 4, "--plugin-metrics-port",
                   str(port)) as upstream:
        spec = LoadSpec(target=upstream, tenants=2, rps=8, duration=4, seed=4,
                        prompt_median=300, output_median=30)
        finished = len(asyncio.run(run_load(spec, progress_out=None))) + 1  # + warm-up
        url = f"http://127.0.0.1:{port}/metrics"
        engine_text = urllib.request.urlopen(f"{upstream}/metrics", timeout=10).read().decode()
        plugin_text = ""
        for _ in range(50):  # the sink's worker thread publishes a moment later
            plugin_text = urllib.request.urlopen(url, timeout=10).read().decode()
            if samples(plugin_text, catalog.REQUESTS.name) >= finished:
                break
            asyncio.run(asyncio.sleep(0.1))
    queue = catalog.REQUEST_QUEUE_TIME.name
    assert samples(plugin_text, catalog.REQUESTS.name) == finished
    assert samples(plugin_text, f"{queue}_count") == finished
    assert samples(engine_text, "vllm:request_queue_time_seconds_count") == finished
    # the same waits, seen by the engine's histogram and by the plugin's
    assert samples(plugin_text, f"{queue}_sum") == pytest.approx(
        samples(engine_text, "vllm:request_queue_time_seconds_sum"), rel=1e-6)
    assert samples(plugin_text, f"{queue}_sum") > 0  # the small cache makes requests wait
