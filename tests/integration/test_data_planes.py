"""Both data planes on odd input, and the nginx plane serving while telemetry is killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlmodel import select

from collectors.store import Store
from collectors.tables import LedgerRow
from engine_shim import nginx_plane
from llmkpi import processes
from tests.integration.helpers import ListSink, serve_app, sidecar_in_process, simulator

pytestmark = pytest.mark.integration

USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


def raw_upstream(seen: list[bytes]) -> web.Application:
    """Keeps each body's bytes; answers JSON, SSE, or JSON to a stream request (non-SSE)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        seen.append(raw)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": {"message": "not valid JSON"}}, status=400)
        if not body.get("stream") or body.get("answer") == "json":
            return web.json_response({"id": "w1", "choices": [
                {"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}],
                "usage": USAGE})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for token in ("a", "b"):
            await response.write(b'data: {"id":"s1","choices":[{"index":0,"delta":'
                                 b'{"content":"%s"}}]}\n\n' % token.encode())
        await response.write(b'data: {"id":"s1","choices":[],"usage":%s}\n\n'
                             % json.dumps(USAGE).encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def test_big_malformed_and_non_sse_bodies_pass_untouched_and_are_recorded() -> None:
    seen: list[bytes] = []
    sink = ListSink()
    prompt = "word " * 2_000_000  # a 10 MB prompt
    whole = json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}]})
    streamed = json.dumps({"model": "m", "stream": True,
                           "messages": [{"role": "user", "content": prompt}]})
    broken = b'{"model": "m", "stream": tru'
    non_sse = json.dumps({"model": "m", "stream": True, "answer": "json"})
    answers: list[tuple[int, bytes]] = []

    async def main() -> None:
        async with serve_app(raw_upstream(seen)) as upstream, \
                sidecar_in_process(upstream, sink) as url, aiohttp.ClientSession() as s:
            for n, body in enumerate((whole.encode(), streamed.encode(), broken,
                                      non_sse.encode())):
                async with s.post(url + "/v1/chat/completions", data=body, headers={
                        "Content-Type": "application/json", "X-Request-Id": f"r{n}"}) as resp:
                    answers.append((resp.status, await resp.read()))

    asyncio.run(main())
    assert len(whole) > 10_000_000
    # the engine got the bytes the client sent; a stream only gains the usage option
    assert seen[0] == whole.encode()
    assert json.loads(seen[1]) == {**json.loads(streamed),
                                   "stream_options": {"include_usage": True}}
    assert seen[2] == broken and seen[3] != non_sse.encode()  # usage asked for: a stream
    assert [status for status, _ in answers] == [200, 200, 400, 200]
    assert b'"usage"' not in answers[1][1]  # the client did not ask for it
    assert json.loads(answers[3][1])["usage"] == USAGE  # not SSE: the bytes as they were
    records = {r.client_request_id: r for r in sink.records}
    assert sorted(records) == ["r0", "r1", "r2", "r3"]
    big = records["r0"]
    assert (big.outcome, big.prompt_tokens, big.finish_reason, big.streamed) == (
        "ok", 7, "stop", False)
    stream = records["r1"]
    assert stream.output_tokens == 2 and len(stream.inter_token_gaps) == 1
    bad = records["r2"]
    assert (bad.outcome, bad.http_status, bad.body_is_json, bad.model) == (
        "rejected", 400, False, "unknown")
    odd = records["r3"]  # a stream answered with plain JSON: no tokens timed, usage read
    assert (odd.outcome, odd.streamed, odd.first_token_time, odd.output_tokens) == (
        "ok", True, None, 2)


def _ledger_ids(database: Path) -> list[str]:
    store = Store.open(str(database))
    try:
        with store.session() as session:
            return sorted(str(r) for r in session.exec(select(LedgerRow.client_request_id)))
    finally:
        store.close()


def _outbox_events(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE event ="
                              " 'llm_request_completed'").fetchone()[0])


class Load:
    """Streaming requests from a thread, one after another on a few connections."""

    def __init__(self, url: str, model: str, streams: int = 4) -> None:
        self.url, self.model, self.streams = url, model, streams
        self.completed: list[str] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def _one(self, session: aiohttp.ClientSession, rid: str) -> None:
        body = {"model": self.model, "stream": True, "max_tokens": 8,
                "messages": [{"role": "user", "content": "hi"}]}
        try:
            async with session.post(self.url + "/v1/chat/completions", json=body,
                                    headers={"X-Request-Id": rid}) as resp:
                raw = await resp.read()
                ok = resp.status == 200 and raw.endswith(b"data: [DONE]\n\n")
        except (aiohttp.ClientError, OSError) as problem:
            ok, raw = False, str(problem).encode()
        (self.completed if ok else self.failed).append(rid)

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            async def worker(w: int) -> None:
                n = 0
                while not self._stop.is_set():
                    await self._one(session, f"w{w}-{n:05d}")
                    n += 1
            await asyncio.gather(*(worker(w) for w in range(self.streams)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.mark.skipif(nginx_plane.missing() is not None, reason=str(nginx_plane.missing()))
def test_telemetry_killed_under_load_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """SIGKILL the telemetry process again and again while clients stream: nginx serves
    throughout (same pid, no failed request), and every completed request is in the ledger
    and the outbox exactly once."""
    folder, database, outbox = tmp_path / "journal", tmp_path / "ledger.sqlite", \
        tmp_path / "outbox.sqlite"
    port, metrics = processes.free_port(), processes.free_port()
    env = {"LLMKPI_DATABASE_URL": str(database), "LLMKPI_LEDGER": "true",
           "LLMKPI_JOURNAL_MAX_BYTES": "65536"}  # ~70 requests a segment: rotations too
    with simulator(tmp_path, profile="zero-delay") as upstream:
        argv = ["sidecar", "--upstream", upstream, "--port", str(port), "--metrics-port",
                str(metrics), "--data-plane", "nginx", "--journal", str(folder),
                "--outbox", str(outbox), "--engine-poll-seconds", "0.5"]

        def start(n: int) -> processes.Started:
            started = processes.start(f"sidecar-{n}", argv, tmp_path / "logs", env=env)
            processes.wait_http(f"http://127.0.0.1:{metrics}/metrics", started)
            return started

        telemetry = start(0)
        nginx_pid = int((folder / "nginx" / "nginx.pid").read_text())
        with urllib.request.urlopen(upstream + "/v1/models") as resp:
            model = json.loads(resp.read())["data"][0]["id"]
        load = Load(f"http://127.0.0.1:{port}", model)
        load.start()
        try:
            for n in range(1, 7):
                time.sleep(0.7)
                os.kill(telemetry.process.pid, signal.SIGKILL)  # mid-batch, whatever it did
                telemetry.process.wait(10)
                time.sleep(0.3)  # nginx alone: requests still journaled
                telemetry = start(n)
                assert int((folder / "nginx" / "nginx.pid").read_text()) == nginx_pid
            time.sleep(0.5)
        finally:
            load.stop()
        try:
            deadline = time.monotonic() + 30
            while len(_ledger_ids(database)) < len(load.completed) \
                    or _outbox_events(outbox) < len(load.completed):
                assert time.monotonic() < deadline, (len(_ledger_ids(database)),
                                                     len(load.completed))
                time.sleep(0.2)
        finally:
            processes.stop(telemetry)  # SIGTERM: stops nginx too
    assert load.failed == [] and len(load.completed) > 100
    assert _ledger_ids(database) == sorted(load.completed)  # each once, none missing
    assert _outbox_events(outbox) == len(load.completed)
    assert not Path(f"/proc/{nginx_pid}").exists() or \
        b"nginx" not in Path(f"/proc/{nginx_pid}/cmdline").read_bytes()



@pytest.mark.skipif(nginx_plane.missing() is not None, reason=str(nginx_plane.missing()))
def test_a_relative_journal_folder_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """`--journal .demo/journal` (what make demo passes): nginx gets absolute paths."""
    monkeypatch.chdir(tmp_path)
    port = processes.free_port()
    plane = nginx_plane.NginxPlane(nginx_plane.NginxConfig(
        upstream="http://127.0.0.1:1", host="127.0.0.1", port=port,
        journal=Path("rel") / "journal", salt="s"))
    plane.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5)
        assert answer.value.code == 502  # nginx is up; the engine is not
    finally:
        plane.stop()
    assert (tmp_path / "rel" / "journal" / "nginx" / "nginx.conf").is_file()
