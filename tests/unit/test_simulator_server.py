import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from engine_shim.simulator.profiles import ZERO_DELAY
from engine_shim.simulator.server import Simulator, build_app
from engine_shim.simulator.text import count_prompt_tokens

MODEL = ZERO_DELAY.model
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there, engine!"}]}


def with_client(body: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(build_app(Simulator(ZERO_DELAY, seed=3)))) as client:
            await body(client)

    asyncio.run(main())


def sse_payloads(raw: str) -> list[Any]:
    out = []
    for block in raw.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_stream_with_usage_has_exact_counts_and_ignore_eos() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        req = {**CHAT, "stream": True, "max_tokens": 17, "ignore_eos": True,
               "stream_options": {"include_usage": True}}
        resp = await client.post("/v1/chat/completions", json=req)
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        events = sse_payloads(await resp.text())
        assert events[-1] == "[DONE]"
        usage = events[-2]["usage"]
        assert events[-2]["choices"] == []
        assert usage["completion_tokens"] == 17
        # template 3 + message 4 + 'Hello there , engine !' 5
        assert usage["prompt_tokens"] == count_prompt_tokens(req) == 12
        content = [e for e in events[:-2] if e["choices"][0]["delta"].get("content")]
        assert len(content) == 17
        assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert content[-1]["choices"][0]["finish_reason"] == "length"
        assert all("usage" not in e for e in events[:-2])

    with_client(body)


def test_stream_without_usage_has_no_usage_chunk() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/v1/completions",
                                 json={"model": MODEL, "prompt": "a b c", "stream": True,
                                       "max_tokens": 5})
        events = sse_payloads(await resp.text())
        assert all(e == "[DONE]" or "usage" not in e for e in events)
        assert 1 <= len([e for e in events if e != "[DONE]"]) <= 5

    with_client(body)


def test_non_stream_and_errors() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        resp = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 4,
                                                               "ignore_eos": True})
        doc = await resp.json()
        assert doc["usage"]["completion_tokens"] == 4
        assert len(doc["choices"][0]["message"]["content"].split()) == 4
        resp = await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
        assert resp.status == 404 and "nope" in (await resp.json())["error"]["message"]
        resp = await client.post("/v1/chat/completions", data=b"{not json")
        assert resp.status == 400 and "not valid JSON" in (await resp.json())["error"]["message"]
        long_prompt = {"model": MODEL, "prompt": "x " * 9000}
        resp = await client.post("/v1/completions", json=long_prompt)
        assert resp.status == 400 and "maximum context length" in await resp.text()

    with_client(body)


def test_models_health_metrics_and_profile_switch() -> None:
    async def body(client: TestClient[Any, Any]) -> None:
        models = await (await client.get("/v1/models")).json()
        assert models["data"][0]["id"] == MODEL
        assert (await client.get("/health")).status == 200
        await client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 3})
        text = await (await client.get("/metrics")).text()
        for name in ("vllm:num_requests_running", "vllm:kv_cache_usage_perc",
                     "vllm:time_to_first_token_seconds_bucket", "vllm:prompt_tokens_total",
                     "vllm:request_success_total", "vllm:request_queue_time_seconds_count"):
            assert name in text, name
        assert "# TYPE vllm:prompt_tokens counter" in text
        resp = await client.post("/admin/profile", json={"profile": "slow"})
        assert (await resp.json()) == {"profile": "slow"}
        resp = await client.post("/admin/profile", json={"profile": "warp"})
        assert resp.status == 400 and "unknown simulator profile" in await resp.text()

    with_client(body)


def test_data_parallel_engines_share_the_load_and_each_reports_under_its_label() -> None:
    """--data-parallel 2: four concurrent requests go to the least loaded engine, so two
    each; /metrics names each family once, with a series per engine; promtool accepts it."""
    import shutil
    import subprocess

    from engine_shim.engine_metrics import parse_exposition, snapshots_from_text

    async def main() -> str:
        app = build_app(Simulator(ZERO_DELAY, seed=3, data_parallel=2))
        async with TestClient(TestServer(app)) as client:
            requests = [client.post("/v1/chat/completions", json={
                **CHAT, "max_tokens": 5, "ignore_eos": True}) for _ in range(4)]
            for resp in await asyncio.gather(*requests):
                assert resp.status == 200
                await resp.read()
            return str(await (await client.get("/metrics")).text())

    text = asyncio.run(main())
    success = {labels["engine"]: value for name, labels, value in parse_exposition(text)
               if name == "vllm:request_success_total"}
    assert success == {"0": 2.0, "1": 2.0}
    assert text.count("# TYPE vllm:num_requests_running gauge") == 1
    (snap,) = snapshots_from_text(text, "sim", 0.0)
    assert snap.engines == 2 and snap.generation_tokens_total == 20  # 4 requests x 5 tokens
    promtool = shutil.which("promtool")
    if promtool is not None:  # make test installs it; the check is what Prometheus parses
        done = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                              capture_output=True, check=False)
        assert "error" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr


def test_prefill_decode_disaggregation_moves_the_kv_and_says_so_on_both_sides() -> None:
    """--pd 1 at 1 GB/s, every 3rd transfer failing: three requests of P prompt tokens are
    prefilled on the prefill engine; two transfers cross (P x 128 KiB each) and the decode
    engine takes their prompt KV as external; the third fails, is recomputed on the decode
    engine, and the prefill side counts the expired lease."""
    from engine_shim.engine_metrics import parse_exposition, snapshots_from_text
    from engine_shim.simulator.server import Disaggregation

    pd = Disaggregation(prefill_engines=1, bandwidth_gb_s=1.0, fail_every=3)

    async def main() -> tuple[str, str, int]:
        simulator = Simulator(ZERO_DELAY, seed=3, disaggregation=pd)
        async with TestClient(TestServer(build_app(simulator))) as client:
            for _ in range(3):
                resp = await client.post("/v1/chat/completions",
                                         json={**CHAT, "max_tokens": 4, "ignore_eos": True})
                assert resp.status == 200
                await resp.read()
            decode = await (await client.get("/metrics")).text()
            prefill = await (await client.get("/prefill/metrics")).text()
            return str(decode), str(prefill), simulator.engine.metrics.prompt_tokens.values[""]

    decode, prefill, _ = asyncio.run(main())
    prompt = count_prompt_tokens(CHAT)
    (d,) = snapshots_from_text(decode, "decode", 0.0, role="decode")
    (p,) = snapshots_from_text(prefill, "prefill", 0.0, role="prefill")
    assert d.kv_transfers_total == 2 and d.kv_transfer_failures_total == 1
    assert d.kv_transfer_bytes_total == 2 * prompt * 131_072
    # two transfers of prompt x 128 KiB at 1 GB/s
    assert d.kv_transfer_seconds_total == pytest.approx(2 * prompt * 131_072 / 1e9)
    # the decode engine computed one token of each transferred prompt, all of the failed one
    assert d.prompt_tokens_transferred_total == 2 * (prompt - 1)
    assert d.prompt_tokens_computed_total == 2 + prompt
    assert p.kv_expired_total == 1 and p.prompt_tokens_computed_total == 3 * prompt
    assert p.generation_tokens_total == 3  # one token per prefill, as llm-d asks
    assert d.generation_tokens_total == 12  # 3 requests x 4 tokens
    names = {name for name, _, _ in parse_exposition(decode)}
    assert "vllm:nixl_num_kv_expired_reqs_total" not in names  # a prefill-side counter


@pytest.mark.parametrize("generation", ["llm-d", "gie"])
def test_the_endpoint_picker_stand_in_speaks_both_generations(generation: str) -> None:
    """/epp/metrics: llm-d's llm_d_epp_* names, or with ?generation=gie the older GIE ones,
    each a name specs/gateway.py lists; three P/D requests are three prefill-decode
    decisions; promtool parses the text."""
    import shutil
    import subprocess

    from engine_shim.engine_metrics import parse_exposition
    from engine_shim.simulator.server import Disaggregation
    from specs.gateway import GATEWAY_SERIES

    async def main() -> str:
        simulator = Simulator(ZERO_DELAY, seed=3, disaggregation=Disaggregation())
        async with TestClient(TestServer(build_app(simulator))) as client:
            for _ in range(3):
                resp = await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 2})
                await resp.read()
            return str(await (await client.get(f"/epp/metrics?generation={generation}")).text())

    text = asyncio.run(main())
    samples = list(parse_exposition(text))
    index = 0 if generation == "llm-d" else 1
    for field, series in GATEWAY_SERIES.items():
        expected = series.names[min(index, len(series.names) - 1)]
        assert any(name == expected for name, _, _ in samples), (field, expected)
    decisions = {labels["decision_type"]: value for name, labels, value in samples
                 if name.endswith("disagg_decision_total")}
    assert decisions == {"decode-only": 0, "prefill-decode": 3}
    stages = {labels["stage"] for name, labels, _ in samples if "saturation" in name}
    assert stages == {"prefill", "decode", "effective"}
    promtool = shutil.which("promtool")
    if promtool is not None:
        done = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                              capture_output=True, check=False)
        assert "error" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr


def test_either_reads_whichever_generation_is_there() -> None:
    from specs.gateway import either

    assert either("ready_endpoints") == \
        "(llm_d_epp_ready_endpoints or inference_pool_ready_pods)"
    assert either("disagg_decisions", "rate({}[5m])") == (
        "(rate(llm_d_epp_disagg_decision_total[5m])"
        " or rate(llm_d_inference_scheduler_disagg_decision_total[5m]))")
