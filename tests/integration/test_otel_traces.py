"""Spans from the real sidecar process reach a local OTLP/HTTP receiver, decoded from protobuf."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from engine_shim.engine_metrics import parse_exposition
from tests.integration.helpers import BackgroundApps, sidecar
from tests.integration.test_sidecar_fidelity import scripted_upstream

pytestmark = pytest.mark.integration

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def value_of(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return tuple(value_of(v) for v in any_value.array_value.values)
    return getattr(any_value, kind) if kind else None


class Receiver:
    """An OTLP/HTTP collector stand-in: stores every span it decodes."""

    def __init__(self, status: int = 200) -> None:
        self.spans: list[dict[str, Any]] = []
        self.status = status
        self.requests = 0

    def app(self) -> web.Application:
        async def traces(request: web.Request) -> web.Response:
            self.requests += 1
            body = await request.read()
            if body[:2] == b"\x1f\x8b":  # aiohttp already inflates Content-Encoding: gzip
                body = gzip.decompress(body)
            if self.status != 200:
                return web.Response(status=self.status)
            export = ExportTraceServiceRequest.FromString(body)
            for resource_spans in export.resource_spans:
                resource = {a.key: value_of(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append({
                            "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(), "name": span.name,
                            "attributes": {a.key: value_of(a.value) for a in span.attributes},
                            "events": [(e.name, e.time_unix_nano) for e in span.events],
                            "start": span.start_time_unix_nano, "end": span.end_time_unix_nano,
                            "status": span.status.code, "resource": resource})
            return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                                content_type="application/x-protobuf")

        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        return app


async def send(url: str, headers: dict[str, str], **body: Any) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            url + "/v1/chat/completions", json={"model": "m", "stream": True, **body},
            headers=headers) as resp:
        assert resp.status == 200
        await resp.read()


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


FAST_BATCHES = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


def test_spans_attributes_links_and_exemplars(tmp_path: Path, apps: BackgroundApps) -> None:
    receiver = Receiver()
    seen: list[dict[str, Any]] = []
    collector = apps.serve(receiver.app())
    upstream = apps.serve(scripted_upstream(seen))
    with sidecar(tmp_path, upstream, "--otlp-endpoint", collector, env=FAST_BATCHES) as proc:
        asyncio.run(send(proc.url, {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
                                    "Authorization": "Bearer sk-a", "X-Feature": "search"}))
        asyncio.run(send(proc.url, {"X-Tenant": "beta"}))
        wait_for(lambda: len(receiver.spans) == 2)
        request = urllib.request.Request(
            proc.metrics_url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(request) as resp:
            metrics = resp.read().decode()
        records = proc.records(expect=2)

    child, root = sorted(receiver.spans, key=lambda s: s["trace_id"] != CLIENT_TRACE)
    # The caller's trace is continued: our span is a child of the caller's span.
    assert child["trace_id"] == CLIENT_TRACE and child["parent_span_id"] == CLIENT_SPAN
    assert root["parent_span_id"] == "" and root["trace_id"] != CLIENT_TRACE
    # The engine got our span as its parent, so its own spans nest under ours.
    for span, upstream_call in zip((child, root), seen, strict=True):
        traceparent = upstream_call["headers"]["traceparent"]
        assert traceparent == f"00-{span['trace_id']}-{span['span_id']}-01"
    attrs = child["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "m"
    assert attrs["gen_ai.usage.input_tokens"] == 9 and attrs["gen_ai.usage.output_tokens"] == 6
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["llmkpi.feature"] == "search" and root["attributes"]["llmkpi.tenant"] == "beta"
    assert attrs["llmkpi.time_to_first_token"] > 0
    assert not any("messages" in key for key in attrs)  # content is opt-in
    assert child["events"][0][0] == "gen_ai.first_token"
    assert child["start"] < child["events"][0][1] < child["end"]
    assert child["resource"]["service.name"] == "llmkpi-sidecar"
    # Records and exemplars carry the same trace ids as the spans.
    assert {r.trace_id for r in records} == {child["trace_id"], root["trace_id"]}
    exemplar_ids = {line.split('trace_id="')[1][:32] for line in metrics.splitlines()
                    if "trace_id=" in line}
    assert exemplar_ids == {child["trace_id"], root["trace_id"]}


def test_content_capture_is_opt_in(tmp_path: Path, apps: BackgroundApps) -> None:
    receiver = Receiver()
    collector = apps.serve(receiver.app())
    upstream = apps.serve(scripted_upstream([]))
    env = {**FAST_BATCHES, "LLMKPI_OTEL_CAPTURE_CONTENT": "true"}
    messages = [{"role": "user", "content": "héllo / wörld ✓"}]
    with sidecar(tmp_path, upstream, "--otlp-endpoint", collector, env=env) as proc:
        asyncio.run(send(proc.url, {}, messages=messages))
        wait_for(lambda: len(receiver.spans) == 1)
        # a prompt over the 64 KiB limit, its cut falling inside a two-byte character
        asyncio.run(send(proc.url, {}, messages=[{"role": "user", "content": "é" * 40_000}]))
        wait_for(lambda: len(receiver.spans) == 2)
    attrs = receiver.spans[0]["attributes"]
    assert attrs["gen_ai.output.messages"] == '[{"role": "assistant", "content": "t0t1t2t3t4!"}]'
    assert json.loads(attrs["gen_ai.input.messages"]) == messages
    clipped = receiver.spans[1]["attributes"]["gen_ai.input.messages"]  # valid UTF-8 to here
    assert clipped.startswith('[{"') and 60_000 < len(clipped.encode()) <= 65_536


@pytest.mark.parametrize("trouble", ["collector-500", "collector-down"])
def test_export_failure_never_reaches_requests(tmp_path: Path, apps: BackgroundApps,
                                               trouble: str) -> None:
    from llmkpi.processes import free_port

    receiver = Receiver(status=500)
    collector = (apps.serve(receiver.app()) if trouble == "collector-500"
                 else f"http://127.0.0.1:{free_port()}")
    upstream = apps.serve(scripted_upstream([]))
    with sidecar(tmp_path, upstream, "--otlp-endpoint", collector, env=FAST_BATCHES) as proc:
        started = time.perf_counter()
        for _ in range(20):
            asyncio.run(send(proc.url, {}))
        elapsed = time.perf_counter() - started
        records = proc.records(expect=20)
        text = proc.metrics_text(requests=20)
    assert len(records) == 20 and all(r.outcome == "ok" for r in records)
    assert elapsed < 10  # each request streams in ~50 ms; a blocking export would add seconds
    ok = sum(v for n, labels, v in parse_exposition(text)
             if n == "llmkpi_requests_total" and labels.get("outcome") == "ok")
    assert ok == 20
    if trouble == "collector-500":
        assert receiver.requests >= 1  # it was tried
