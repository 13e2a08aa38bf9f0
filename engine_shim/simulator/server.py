"""The simulator's OpenAI-compatible HTTP server (aiohttp): models, completions, chat, metrics."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from engine_shim.simulator.engine import Engine, Sequence, prefix_block_hashes
from engine_shim.simulator.epp import EndpointPicker
from engine_shim.simulator.exposition import render_engines
from engine_shim.simulator.profiles import Profile, get_profile
from engine_shim.simulator.text import WordSource, count_prompt_tokens, prompt_token_strings

log = logging.getLogger(__name__)

ENGINE_KEY = web.AppKey("engine", Engine)


class BadRequestError(Exception):
    def __init__(self, message: str, status: int = 400, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status, self.kind = status, kind


def _error(exc: BadRequestError) -> web.Response:
    body = {"error": {"message": str(exc), "type": exc.kind, "param": None,
                      "code": exc.status}}
    return web.json_response(body, status=exc.status)


@dataclass(frozen=True)
class Disaggregation:
    """Prefill and decode on separate engines (llm-d, Dynamo), the KV cache moved between
    them: a request is prefilled on a prefill engine (one token, as llm-d's routing sidecar
    asks), its KV crosses at `bandwidth_gb_s` (Llama-3-8B in BF16 holds 128 KiB of KV per
    token: 32 layers x 8 KV heads x 128 x K and V x 2 bytes), the decode engine waits for it
    (reason=deferred) and then generates. Every `fail_every`-th transfer fails: the decode
    engine prefills itself (vLLM's recompute policy) and the prefill side's lease expires.

    With `prefill_via` (a base URL: the prefill pod as the decode pod reaches it, e.g. through
    its own llmkpi sidecar in front of this server's /prefill) the prefill is an HTTP request
    there, as llm-d's routing sidecar sends it: the client's body and headers, max_tokens 1,
    not streamed, kv_transfer_params.do_remote_decode. A prefill that fails there is
    recomputed by the decode engine, as a failed transfer is."""

    prefill_engines: int = 1
    bandwidth_gb_s: float = 25.0
    kv_bytes_per_token: int = 131_072
    fail_every: int = 0
    prefill_via: str = ""

    def seconds(self, tokens: int) -> float:
        return tokens * self.kv_bytes_per_token / (self.bandwidth_gb_s * 1e9)


class Simulator:
    """Request handling around one Engine; `seed` makes output lengths and words repeatable."""

    def __init__(self, profile: Profile, seed: int = 0, *,
                 per_request_metrics: bool = False, data_parallel: int = 1,
                 disaggregation: Disaggregation | None = None) -> None:
        if data_parallel < 1:
            raise ValueError(f"--data-parallel {data_parallel}: at least 1 engine")
        # vLLM's --data-parallel-size: engines of one model behind one server, each request
        # to the least loaded, each exporting its series under its own `engine` label
        self.pd = disaggregation
        role = "decode" if disaggregation else ""
        self.engines = [Engine(profile, index, role) for index in range(data_parallel)]
        self.prefill_engines = [Engine(profile, index, "prefill") for index in
                                range(disaggregation.prefill_engines if disaggregation else 0)]
        self.transfers = 0
        self.engine = self.engines[0]
        self.picker = EndpointPicker(profile.model)  # the gateway in front, as a stand-in
        self.per_request_metrics = per_request_metrics  # as vLLM's --enable-per-request-metrics
        self.served_model = profile.model
        self.seed = seed
        self._counter = itertools.count()
        self.created = int(time.time())
        self._client: aiohttp.ClientSession | None = None

    # -- routes ----------------------------------------------------------------------------
    async def models(self, _request: web.Request) -> web.Response:
        card = {"id": self.served_model, "object": "model", "created": self.created,
                "owned_by": "llmkpi-simulator", "root": self.served_model,
                "max_model_len": self.engine.profile.max_model_len}
        return web.json_response({"object": "list", "data": [card]})

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(text=render_engines([e.metrics for e in self.engines]),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def epp_metrics(self, request: web.Request) -> web.Response:
        """The endpoint picker's /metrics (llm-d's names; `?generation=gie`: GIE's)."""
        text = self.picker.render(self.engines, self.prefill_engines,
                                  request.query.get("generation", "llm-d"))
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def prefill_metrics(self, _request: web.Request) -> web.Response:
        """The prefill pod's /metrics (P/D mode): scraped as its own target."""
        if not self.prefill_engines:
            return web.Response(status=404, text="not in P/D mode (--pd)")
        return web.Response(text=render_engines([e.metrics for e in self.prefill_engines]),
                            content_type="text/plain", charset="utf-8")

    async def set_profile(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            profile = get_profile(str(body["profile"]))
        except (ValueError, KeyError, TypeError) as exc:
            return _error(BadRequestError(f"body must be {{\"profile\": NAME}}: {exc}"))
        for engine in self.engines:
            engine.set_profile(profile)
        log.info("simulator profile switched to %s", profile.name)
        return web.json_response({"profile": profile.name})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def prefill_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False, prefill=True)

    async def prefill_chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True, prefill=True)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    # -- generation ------------------------------------------------------------------------
    async def _generate(self, request: web.Request, chat: bool,
                        prefill: bool = False) -> web.StreamResponse:
        """A request to the decode (or only) engines; with `prefill`, one to the prefill
        pod (P/D mode): one token on a prefill engine, its KV left for the decode side."""
        try:
            body = await self._parse(request, chat)
            # what llm-d's routing sidecar sends a prefill pod: served as a prefill here too,
            # so a misrouted one never asks for another remote prefill (no loop)
            params = body.get("kv_transfer_params")
            prefill = prefill or (isinstance(params, dict) and bool(params.get(
                "do_remote_decode")))
            if prefill and not self.prefill_engines:
                raise BadRequestError("a remote prefill (kv_transfer_params.do_remote_decode)"
                                      " needs P/D mode (--pd)")
            if prefill:
                body = {**body, "max_tokens": 1, "stream": False}
                body.pop("max_completion_tokens", None)
            seq, words = self._sequence(body)
        except BadRequestError as exc:
            return _error(exc)
        if prefill:
            engine = _least_loaded(self.prefill_engines)
            engine.submit(seq)
            try:
                return await self._whole(seq, words, self._meta(chat), chat)
            finally:
                if not seq.finished:
                    engine.abort(seq)
        stream = bool(body.get("stream"))
        options = body.get("stream_options") or {}
        include_usage = stream and isinstance(options, dict) and bool(options.get("include_usage"))
        meta = self._meta(chat)
        engine = _least_loaded(self.engines)
        self.picker.routed(self.pd is not None)
        if self.pd is not None:
            await self._prefill_elsewhere(seq, engine, self.pd, request, body, chat)
        engine.submit(seq)
        try:
            if stream:
                return await self._stream(request, seq, words, meta, chat, include_usage)
            return await self._whole(seq, words, meta, chat)
        finally:
            if not seq.finished:
                engine.abort(seq)

    def _meta(self, chat: bool) -> dict[str, Any]:
        prefix = "chatcmpl" if chat else "cmpl"
        return {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()),
                "model": self.served_model}

    async def _prefill_elsewhere(self, seq: Sequence, decode: Engine, pd: Disaggregation,
                                 request: web.Request, body: dict[str, Any],
                                 chat: bool) -> None:
        """Prefill on a prefill engine, then move the KV to `decode` (see Disaggregation)."""
        if pd.prefill_via:  # where it ran is the prefill pod's business: one of its engines
            prefilled = await self._prefill_over_http(pd.prefill_via, request, body, chat)
            prefill = self.prefill_engines[self.transfers % len(self.prefill_engines)]
        else:
            prefill = await self._prefill_here(seq)
            prefilled = True
        self.transfers += 1
        failed = not prefilled or (pd.fail_every > 0 and self.transfers % pd.fail_every == 0)
        seconds = pd.seconds(seq.prompt_tokens)
        seq.arrival = asyncio.get_running_loop().time()  # the decode engine has it from now
        decode.deferred += 1  # waiting on its KV, as vLLM's reason="deferred" counts it
        try:
            await asyncio.sleep(seconds)
        finally:
            decode.deferred -= 1
        metrics = decode.metrics
        if not prefilled:
            metrics.nixl_failed.add()  # nothing to fetch: the decode engine recomputes
        elif failed:
            metrics.nixl_failed.add()
            prefill.metrics.nixl_expired.add()  # the KV it holds is never fetched
        else:
            metrics.nixl_xfer.observe(seconds)
            metrics.nixl_bytes.observe(float(seq.prompt_tokens * pd.kv_bytes_per_token))
            seq.external_tokens = seq.prompt_tokens

    async def _prefill_here(self, seq: Sequence) -> Engine:
        prefill = _least_loaded(self.prefill_engines)
        remote = Sequence(request_id=seq.request_id + "-prefill", prompt_tokens=seq.prompt_tokens,
                          output_limit=1, finish_reason="length", arrival=seq.arrival,
                          prefix_hashes=seq.prefix_hashes)
        prefill.submit(remote)
        try:
            async for _ in self._tokens(remote):
                pass
        finally:
            if not remote.finished:
                prefill.abort(remote)
        return prefill

    async def _prefill_over_http(self, base: str, request: web.Request, body: dict[str, Any],
                                 chat: bool) -> bool:
        """The prefill request llm-d's routing sidecar sends; False when it failed."""
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        ask = {key: value for key, value in body.items()
               if key not in ("stream", "stream_options", "max_completion_tokens")}
        ask.update(max_tokens=1, stream=False, kv_transfer_params={"do_remote_decode": True})
        headers = {key: value for key, value in request.headers.items()
                   if key.lower() not in HOP_HEADERS}
        url = base.rstrip("/") + ("/v1/chat/completions" if chat else "/v1/completions")
        try:
            async with self._client.post(url, json=ask, headers=headers) as answer:
                await answer.read()
                if answer.status == 200:
                    return True
                log.warning("remote prefill at %s answered %d", url, answer.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("remote prefill at %s failed: %s", url, exc)
        return False

    async def _parse(self, request: web.Request, chat: bool) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            raise BadRequestError(f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadRequestError("request body must be a JSON object")
        if body.get("model") not in (None, self.served_model):
            raise BadRequestError(f"The model `{body.get('model')}` does not exist.", 404,
                             "NotFoundError")
        if chat and not isinstance(body.get("messages"), list):
            raise BadRequestError("field 'messages' is required and must be a list")
        if not chat and "prompt" not in body:
            raise BadRequestError("field 'prompt' is required")
        if int(body.get("n") or 1) != 1:
            raise BadRequestError("the simulator serves n=1 only")
        return body

    def _sequence(self, body: dict[str, Any]) -> tuple[Sequence, WordSource]:
        profile = self.engine.profile
        prompt_tokens = count_prompt_tokens(body)
        room = profile.max_model_len - prompt_tokens
        if room <= 0:
            raise BadRequestError(
                f"This model's maximum context length is {profile.max_model_len} tokens."
                f" However, your request has {prompt_tokens} input tokens.")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise BadRequestError("max_tokens must be a positive integer")
        n = next(self._counter)
        rng = random.Random(self.seed * 1_000_003 + n)
        natural = max(1, round(rng.lognormvariate(0, profile.output_len_sigma)
                               * profile.output_len_median))
        limit = min(max_tokens, room) if max_tokens is not None else room
        if body.get("ignore_eos"):
            output, reason = limit, "length"
        else:
            output = min(natural, limit)
            reason = "stop" if natural < limit else "length"
        if not self.engine.fits(prompt_tokens, output):
            raise BadRequestError("request needs more KV cache than the engine has")
        seq = Sequence(
            request_id=str(n), prompt_tokens=prompt_tokens, output_limit=output,
            finish_reason=reason, arrival=asyncio.get_running_loop().time(),
            prefix_hashes=prefix_block_hashes(prompt_token_strings(body), profile.block_size))
        return seq, WordSource(rng.randrange(2**32))

    async def _tokens(self, seq: Sequence) -> AsyncIterator[int]:
        while True:
            index = await seq.tokens.get()
            if index is None:
                return
            yield index

    def _timings(self, seq: Sequence) -> dict[str, Any]:
        """vLLM's per-request metrics of a finished sequence, in milliseconds: queue wait
        (arrival to first scheduled), scheduled to first token, first to last token, and
        the mean gap between tokens."""
        if not self.per_request_metrics or seq.first_scheduled is None \
                or seq.first_token is None or seq.last_token is None:
            return {}
        generation = seq.last_token - seq.first_token
        metrics = {"queue_time_ms": (seq.first_scheduled - seq.arrival) * 1000,
                   "time_to_first_token_ms": (seq.first_token - seq.first_scheduled) * 1000,
                   "generation_time_ms": generation * 1000}
        if seq.generated > 1:
            metrics["mean_itl_ms"] = generation / (seq.generated - 1) * 1000
        return {"metrics": metrics}

    def _usage(self, seq: Sequence) -> dict[str, Any]:
        return {"prompt_tokens": seq.prompt_tokens, "completion_tokens": seq.generated,
                "total_tokens": seq.prompt_tokens + seq.generated,
                "prompt_tokens_details": {"cached_tokens": seq.cached_tokens}}

    async def _stream(self, request: web.Request, seq: Sequence, words: WordSource,
                      meta: dict[str, Any], chat: bool, include_usage: bool
                      ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        kind = "chat.completion.chunk" if chat else "text_completion"
        async for index in self._tokens(seq):
            text = words.next_token(first=index == 1)
            last = index == seq.output_limit
            reason = seq.finish_reason if last else None
            if chat:
                if index == 1:
                    role = {"index": 0, "delta": {"role": "assistant", "content": ""},
                            "logprobs": None, "finish_reason": None}
                    await response.write(_sse({**meta, "object": kind, "choices": [role]}))
                choice: dict[str, Any] = {"index": 0, "delta": {"content": text},
                                          "logprobs": None, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}
            await response.write(_sse({**meta, "object": kind, "choices": [choice]}))
        if include_usage:
            await response.write(_sse({**meta, "object": kind, "choices": [],
                                       "usage": self._usage(seq), **self._timings(seq)}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _whole(self, seq: Sequence, words: WordSource, meta: dict[str, Any],
                     chat: bool) -> web.Response:
        text = "".join([words.next_token(first=i == 1) async for i in self._tokens(seq)])
        if chat:
            choice: dict[str, Any] = {"index": 0, "logprobs": None,
                                      "message": {"role": "assistant", "content": text},
                                      "finish_reason": seq.finish_reason}
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None,
                      "finish_reason": seq.finish_reason}
            obj = "text_completion"
        return web.json_response({**meta, "object": obj, "choices": [choice],
                                  "usage": self._usage(seq), **self._timings(seq)})


# not forwarded to the prefill pod: the connection's own, and what aiohttp sets for the body
HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                         "keep-alive", "accept-encoding", "content-type"})


def _least_loaded(engines: list[Engine]) -> Engine:
    return min(engines, key=lambda e: len(e.running) + len(e.waiting) + e.deferred)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def build_app(simulator: Simulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[ENGINE_KEY] = simulator.engine
    app.router.add_get("/v1/models", simulator.models)
    app.router.add_get("/health", simulator.health)
    app.router.add_get("/metrics", simulator.metrics)
    app.router.add_get("/prefill/metrics", simulator.prefill_metrics)
    # the prefill pod's own face, so a sidecar can stand in front of it (--upstream .../prefill)
    app.router.add_get("/prefill/v1/models", simulator.models)
    app.router.add_get("/prefill/health", simulator.health)
    app.router.add_post("/prefill/v1/completions", simulator.prefill_completions)
    app.router.add_post("/prefill/v1/chat/completions", simulator.prefill_chat_completions)
    app.router.add_get("/epp/metrics", simulator.epp_metrics)
    app.router.add_post("/v1/completions", simulator.completions)
    app.router.add_post("/v1/chat/completions", simulator.chat_completions)
    app.router.add_post("/admin/profile", simulator.set_profile)

    async def engine_task(app: web.Application) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(engine.run())
                 for engine in (*simulator.engines, *simulator.prefill_engines)]
        yield
        for task in tasks:
            task.cancel()
        await simulator.close()

    app.cleanup_ctx.append(engine_task)
    return app
