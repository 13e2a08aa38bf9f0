"""Hostile requests on both data planes: spoofed tenants, shared and over-long request ids,
over-long model names. The ledger keys on the plane's own id; the tenant header is honoured
only from a trusted sender, and every refusal is counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlmodel import select

from collectors.store import Store
from collectors.tables import LedgerRow
from engine_shim.tenancy import SECRET_HEADER, hash_api_key
from tests.integration.helpers import (
    BackgroundApps,
    ListSink,
    serve_app,
    sidecar,
    sidecar_in_process,
)
from tests.integration.test_sidecar_fidelity import scripted_upstream

pytestmark = pytest.mark.integration


async def chat(url: str, headers: dict[str, str], model: str = "m") -> None:
    async with aiohttp.ClientSession() as session, session.post(
            url + "/v1/chat/completions", json={"model": model, "stream": True},
            headers=headers) as resp:
        assert resp.status == 200
        await resp.read()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_an_untrusted_tenant_header_cannot_move_usage_to_another_tenant(
        tmp_path: Path) -> None:
    """No trusted network: X-Tenant: acme with another key, or with none, is billed to the
    key's hash (or anonymous) and counted; the gateway's shared secret makes it honoured,
    and the secret never reaches the engine."""
    apps = BackgroundApps()
    seen: list[dict[str, Any]] = []
    upstream = apps.serve(scripted_upstream(seen))
    env = {"LLMKPI_TRUSTED_NETWORKS": "", "LLMKPI_TENANT_HEADER_SECRET": "gw-7f3a",
           "LLMKPI_KEY_SALT": "salt-1"}
    with sidecar(tmp_path, upstream, env=env) as proc:
        asyncio.run(chat(proc.url, {"Authorization": "Bearer sk-mallory", "X-Tenant": "acme"}))
        asyncio.run(chat(proc.url, {"X-Tenant": "acme"}))
        asyncio.run(chat(proc.url, {"Authorization": "Bearer sk-gw", "X-Tenant": "acme",
                                    SECRET_HEADER: "gw-7f3a"}))
        records = proc.records(expect=3)
        text = proc.metrics_text(requests=3)
    apps.close()
    assert [r.tenant for r in records] == [hash_api_key("sk-mallory", "salt-1"), "anonymous",
                                           "acme"]
    assert metric(text, "llmkpi_tenant_header_refused_total") == 2
    assert all(SECRET_HEADER.lower() not in {k.lower() for k in s["headers"]} for s in seen)


def test_client_request_ids_neither_merge_nor_break_ledger_rows(tmp_path: Path) -> None:
    """Two requests sharing an X-Request-Id are two ledger rows; a 200-character id and a
    300-character model name are stored cut to their columns and marked."""
    apps = BackgroundApps()
    upstream = apps.serve(scripted_upstream([]))
    database = tmp_path / "ledger.sqlite"
    env = {"LLMKPI_DATABASE_URL": str(database), "LLMKPI_LEDGER": "true"}
    with sidecar(tmp_path, upstream, "--journal", str(tmp_path / "journal"),
                 env=env) as proc:
        asyncio.run(chat(proc.url, {"X-Request-Id": "dup"}))
        asyncio.run(chat(proc.url, {"X-Request-Id": "dup"}))
        asyncio.run(chat(proc.url, {"X-Request-Id": "i" * 200}, model="m" * 300))
        records = proc.records(expect=3)
        store = Store.open(str(database))
        for _ in range(300):  # up to 30 s: the ledger commits in batches, late on a busy box
            with store.session() as session:
                rows = session.exec(select(LedgerRow)).all()
            if len(rows) == 3:
                break
            asyncio.run(asyncio.sleep(0.1))
        text = proc.metrics_text(requests=3)
    apps.close()
    assert len({r.request_id for r in records}) == 3  # the planes' own ids
    assert sorted(r.client_request_id or "" for r in rows) == ["dup", "dup", "i" * 128]
    long = next(r for r in rows if r.client_request_id == "i" * 128)
    assert len(long.model) == 256 and long.truncated
    assert metric(text, 'llmkpi_sink_quarantined_records_total{sink="ledger"}') == 0


def cut_stream_upstream() -> web.Application:
    """An engine whose stream ends cleanly but without `data: [DONE]`."""

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"id":"c1","choices":[{"index":0,"delta":'
                             b'{"content":"half"}}]}\n\n')
        await response.write_eof()
        return response

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def test_odd_requests_and_a_cut_stream(tmp_path: Path) -> None:
    """A stream without [DONE] is an error; JSON nested 100,000 deep passes as not-JSON; an
    absolute-form request target is served like its path."""
    sink = ListSink()
    answers: dict[str, Any] = {}

    async def main() -> None:
        async with serve_app(cut_stream_upstream()) as upstream, \
                sidecar_in_process(upstream, sink) as url, aiohttp.ClientSession() as s:
            await chat(url, {"X-Request-Id": "cut"})
            async with s.post(url + "/v1/chat/completions", data=b"[" * 100_000, headers={
                    "Content-Type": "application/json", "X-Request-Id": "deep"}) as resp:
                answers["deep"] = resp.status
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET http://{host}:{port}/v1/models HTTP/1.1\r\nHost: {host}\r\n"
                         "Connection: close\r\n\r\n".encode())
            answers["absolute"] = (await reader.read()).split(b"\r\n", 1)[0]
            writer.close()

    asyncio.run(main())
    records = {r.client_request_id: r for r in sink.records}
    assert (records["cut"].outcome, dict(records["cut"].extra)) == (
        "error", {"stream_incomplete": "1"})
    assert records["cut"].output_tokens == 1
    assert answers["deep"] == 200 and records["deep"].body_is_json is False
    assert answers["absolute"] == b"HTTP/1.1 200 OK"


def test_a_body_over_the_limit_is_answered_413_and_recorded(tmp_path: Path) -> None:
    """--max-body-mib 1: a 2 MiB body is refused with a JSON 413 whether its size is known
    up front (Content-Length) or not (chunked); both are rejected requests of the key's
    tenant, marked; a body just under the limit passes to the engine."""
    apps = BackgroundApps()
    seen: list[dict[str, Any]] = []
    upstream = apps.serve(scripted_upstream(seen))
    big = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"' + \
        b"x" * (2 * 1024 * 1024) + b'"}]}'
    fits = big[: 1024 * 1024 - 1024] + b'"}]}'
    answers: list[tuple[int, str]] = []

    async def chunks() -> Any:
        for start in range(0, len(big), 65_536):
            yield big[start:start + 65_536]

    async def main(url: str) -> None:
        headers = {"Authorization": "Bearer sk-big", "X-Request-Id": "",
                   "Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:
            for rid, data in (("sized", big), ("chunked", chunks())):
                async with session.post(url + "/v1/chat/completions", data=data,
                                        headers={**headers, "X-Request-Id": rid}) as resp:
                    answers.append((resp.status, (await resp.json())["error"]["type"]))
            async with session.post(url + "/v1/chat/completions", data=fits, headers={
                    **headers, "X-Request-Id": "fits"}) as resp:
                assert resp.status == 200
                await resp.read()

    env = {"LLMKPI_KEY_SALT": "salt-1"}
    with sidecar(tmp_path, upstream, "--max-body-mib", "1", env=env) as proc:
        asyncio.run(main(proc.url))
        records = {r.client_request_id: r for r in proc.records(expect=3)}
    apps.close()
    assert answers == [(413, "request_too_large"), (413, "request_too_large")]
    for rid in ("sized", "chunked"):
        assert (records[rid].outcome, records[rid].http_status) == ("rejected", 413)
        assert records[rid].tenant == hash_api_key("sk-big", "salt-1")
        assert dict(records[rid].extra).get("body_too_large") == "1"
    assert records["fits"].outcome == "ok" and len(seen) == 1
