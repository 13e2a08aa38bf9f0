"""Where a request's time went: vLLM's per-request metrics (`--enable-per-request-metrics`)
read by both data planes into the record's queue, prefill and decode spans, stripped with
the usage chunk when the client did not ask for usage; the simulator returns them too."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.integration.helpers import ListSink, serve_app, sidecar_in_process

pytestmark = pytest.mark.integration

TIMINGS = {"queue_time_ms": 12.5, "time_to_first_token_ms": 80.0, "generation_time_ms": 400.0,
           "mean_itl_ms": 20.0, "tokens_per_second": 41.5}


def timing_upstream() -> web.Application:
    """Streams two tokens; the usage chunk carries the metrics the body's `timings` names
    (vLLM sends them only there, and only when usage is asked for)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in ("a", "b"):
            await response.write(b'data: {"id":"c1","choices":[{"index":0,"delta":'
                                 b'{"content":"' + word.encode() + b'"}}]}\n\n')
        if (body.get("stream_options") or {}).get("include_usage"):
            chunk = {"id": "c1", "choices": [], "usage": {"prompt_tokens": 7,
                     "completion_tokens": 2, "total_tokens": 9}, "metrics": body["timings"]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


async def stream(session: aiohttp.ClientSession, url: str, rid: str, timings: dict[str, Any],
                 usage: bool) -> bytes:
    body: dict[str, Any] = {"model": "m", "stream": True, "timings": timings}
    if usage:
        body["stream_options"] = {"include_usage": True}
    async with session.post(url + "/v1/chat/completions", json=body,
                            headers={"X-Request-Id": rid}) as resp:
        assert resp.status == 200
        return await resp.read()


def test_engine_timings_become_the_records_spans_on_both_planes() -> None:
    sink = ListSink()
    seen: dict[str, bytes] = {}

    async def main() -> None:
        async with serve_app(timing_upstream()) as upstream, \
                sidecar_in_process(upstream, sink) as url, aiohttp.ClientSession() as s:
            seen["quiet"] = await stream(s, url, "quiet", TIMINGS, usage=False)
            seen["asked"] = await stream(s, url, "asked", TIMINGS, usage=True)
            seen["bad"] = await stream(s, url, "bad", {**TIMINGS, "queue_time_ms": -3.0,
                                                       "mean_itl_ms": "soon"}, usage=False)

    asyncio.run(main())
    records = {r.client_request_id: r for r in sink.records}
    for rid in ("quiet", "asked"):
        record = records[rid]
        # 12.5 ms -> 0.0125 s; 80 ms -> 0.08 s; 400 ms -> 0.4 s; 20 ms -> 0.02 s
        assert record.queue_time == pytest.approx(0.0125, abs=1e-6)
        assert record.prefill_time == pytest.approx(0.08, abs=1e-6)
        assert record.decode_time == pytest.approx(0.4, abs=1e-6)
        assert record.time_per_output_token == pytest.approx(0.02, abs=1e-6)
        assert "engine_timing_refused" not in dict(record.extra)
    # a client that did not ask for usage sees neither usage nor the engine's metrics
    assert b"metrics" not in seen["quiet"] and b"usage" not in seen["quiet"]
    assert b'"queue_time_ms": 12.5' in seen["asked"]  # asked: the engine's bytes, unchanged
    bad = records["bad"]
    assert (bad.queue_time, bad.time_per_output_token) == (None, None)  # refused, not guessed
    assert bad.prefill_time == pytest.approx(0.08, abs=1e-6)
    assert dict(bad.extra)["engine_timing_refused"] == "1"


def test_the_simulator_returns_timings_that_fit_inside_what_the_sidecar_saw() -> None:
    """The simulator's engine spans (as vLLM measures them, from the engine's own clock)
    never exceed the sidecar's view: queue + prefill <= TTFT, decode <= e2e; the rest of
    TTFT is the network and the sidecar."""
    from engine_shim.simulator.profiles import get_profile
    from engine_shim.simulator.server import Simulator, build_app

    sink = ListSink()

    async def main() -> None:
        app = build_app(Simulator(get_profile("h100-llama3-8b"), seed=1,
                                  per_request_metrics=True))
        async with serve_app(app) as upstream, sidecar_in_process(upstream, sink) as url, \
                aiohttp.ClientSession() as s:
            for n in range(4):
                question = {"role": "user", "content": f"question {n} " * 50}
                body = {"model": "meta-llama/Meta-Llama-3-8B-Instruct", "stream": True,
                        "max_tokens": 8, "messages": [question]}
                async with s.post(url + "/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200
                    assert b"metrics" not in await resp.read()

    asyncio.run(main())
    assert len(sink.records) == 4
    for record in sink.records:
        ttft = record.time_to_first_token
        assert record.queue_time is not None and record.prefill_time is not None
        assert record.decode_time is not None and ttft is not None
        assert record.prefill_time > 0
        assert record.queue_time + record.prefill_time <= ttft + 1e-3
        assert record.decode_time <= record.e2e_latency + 1e-3
