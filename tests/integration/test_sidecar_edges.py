"""Cancellation, bad bodies, tenant bounding and user errors, against real processes."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from engine_shim.engine_metrics import parse_exposition
from tests.integration.helpers import ListSink, run, sidecar, sidecar_in_process, simulator

pytestmark = pytest.mark.integration


def engine_gauge(upstream: str, name: str) -> float:
    with urllib.request.urlopen(upstream + "/metrics") as resp:
        text = resp.read().decode()
    return sum(v for n, _, v in parse_exposition(text) if n == name)


def test_client_disconnect_cancels_the_engine_request(tmp_path: Path) -> None:
    sink = ListSink()

    async def main(upstream: str) -> None:
        async with sidecar_in_process(upstream, sink) as url, aiohttp.ClientSession() as s:
            body = {"messages": [{"role": "user", "content": "go"}], "stream": True,
                    "max_tokens": 4000, "ignore_eos": True}
            resp = await s.post(url + "/v1/chat/completions", json=body)
            for _ in range(5):
                await resp.content.readline()
            assert engine_gauge(upstream, "vllm:num_requests_running") == 1
            resp.close()  # the user closed the tab
            deadline = time.monotonic() + 5
            while engine_gauge(upstream, "vllm:num_requests_running") != 0:
                assert time.monotonic() < deadline, "the engine kept generating"
                await asyncio.sleep(0.05)
            while not sink.records and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    with simulator(tmp_path) as upstream:
        asyncio.run(main(upstream))
        assert engine_gauge(upstream, "vllm:kv_cache_usage_perc") == 0
    (record,) = sink.records
    assert record.outcome == "cancelled"
    assert record.first_token_time is not None and record.finish_reason is None


def test_non_json_body_is_forwarded_as_is_and_recorded(tmp_path: Path) -> None:
    sink = ListSink()

    async def main(upstream: str) -> None:
        async with sidecar_in_process(upstream, sink) as url, aiohttp.ClientSession() as s, \
                s.post(url + "/v1/completions", data=b"prompt=hello&stream=true",
                       headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
            assert resp.status == 400
            assert "not valid JSON" in (await resp.json())["error"]["message"]

    with simulator(tmp_path, profile="zero-delay") as upstream:
        asyncio.run(main(upstream))
    (record,) = sink.records
    assert record.body_is_json is False and record.outcome == "rejected"
    assert record.model == "unknown" and record.http_status == 400


def test_2000_api_keys_leave_at_most_k_plus_one_tenant_series(tmp_path: Path) -> None:
    async def spray(url: str) -> None:
        limit = asyncio.Semaphore(32)

        async def one(session: aiohttp.ClientSession, i: int) -> None:
            async with limit, session.post(
                    url + "/v1/completions",
                    json={"prompt": "hi", "max_tokens": 2, "stream": i % 2 == 0},
                    headers={"Authorization": f"Bearer sk-user-{i:05d}"}) as resp:
                assert resp.status == 200
                await resp.read()

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(one(session, i) for i in range(2000)))

    with simulator(tmp_path, profile="zero-delay") as upstream, \
            sidecar(tmp_path, upstream, "--max-tenants", "8") as proc:
        asyncio.run(spray(proc.url))
        proc.records(expect=2000)
        text = proc.metrics_text(requests=2000)
    tenants = {labels["tenant"] for name, labels, _ in parse_exposition(text)
               if "tenant" in labels}
    assert len(tenants) <= 9 and "other" in tenants
    total = sum(v for n, labels, v in parse_exposition(text) if n == "llmkpi_requests_total")
    assert total == 2000
    assert sum(v for n, _, v in parse_exposition(text)
               if n == "llmkpi_sink_dropped_records_total") == 0


def test_bad_alias_file_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "aliases.yaml"
    bad.write_text("version: 1\ntenants:\n  acme: [sk-live-123]\n")
    done = run([".venv/bin/llmkpi", "sidecar", "--upstream", "http://127.0.0.1:1",
                "--tenant-aliases", str(bad), "--port", "0", "--metrics-port", "0"])
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"llmkpi: error: {bad}:3: tenants.acme: an entry is not a key hash" in done.stderr
    assert "sk-live-123" not in done.stderr  # what was pasted may be a real key


def test_bad_settings_are_one_clear_line(tmp_path: Path) -> None:
    done = run([".venv/bin/llmkpi", "sidecar", "--upstream", "vllm:8000"])
    assert done.returncode == 2 and "must start with http://" in done.stderr
    done = run([".venv/bin/llmkpi", "simulate", "--profile", "warp"])
    assert done.returncode == 2 and "unknown simulator profile 'warp'" in done.stderr
    assert "Traceback" not in done.stderr
