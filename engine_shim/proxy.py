"""The sidecar proxy: forwards everything to the engine unchanged and times every token.

Completions and chat completions are measured: TTFT, each inter-token gap and E2E from the
SSE chunks as they pass, exact token counts from the engine's usage (asked for in the stream
and removed again when the client did not ask). Each finished request becomes one
RequestRecord handed to a non-blocking sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from engine_shim.engine_metrics import EngineReader
from engine_shim.records import (
    ENGINE_TIMING_REFUSED,
    TENANT_REFUSED,
    UNKNOWN,
    Outcome,
    RecordSink,
    RequestRecord,
    engine_timing,
)
from engine_shim.stream import (
    SSESplitter,
    StreamTimer,
    ensure_stream_usage,
    inspect_event,
    usage_counts,
)
from engine_shim.tenancy import SECRET_HEADER, TenantResolver
from engine_shim.tracecontext import TraceContext, start_span_context

log = logging.getLogger(__name__)

MEASURED_PATHS = frozenset({"/v1/completions", "/v1/chat/completions"})
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailers", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
    SECRET_HEADER.lower(),
})
NO_FEATURE = "none"
ASK_USAGE = b'"stream_options":{"include_usage":true},'  # before a stream body's first key


@dataclass(frozen=True)
class SidecarConfig:
    upstream: str
    feature_header: str = "X-Feature"
    pod: str = ""
    engine_poll_interval: float = 5.0
    trace_sample_ratio: float = 1.0
    capture_content: bool = False  # prompt and completion text on spans: opt-in only
    content_limit: int = 65_536
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    max_body_bytes: int = 32 * 1024 * 1024  # a larger request body is answered 413
    role: str = ""  # the engine's part in P/D disaggregation: prefill, decode, "" for both


BODY_TOO_LARGE = "body_too_large"  # the record's extra mark of a 413 for the body's size


@dataclass
class _Request:
    """What is known about one measured request while it is in flight."""

    request_id: str
    tenant: str
    model: str
    feature: str
    endpoint: str
    trace: TraceContext
    body_is_json: bool
    stream: bool
    strip_usage: bool
    timer: StreamTimer
    usage: dict[str, Any] | None = None
    engine_metrics: dict[str, Any] | None = None  # vLLM's per-request metrics, when on
    finish_reason: str | None = None
    response_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    output_parts: list[str] | None = None
    client_request_id: str | None = None
    done: bool = False  # the stream's `data: [DONE]` was seen


def outcome_for_status(status: int) -> Outcome:
    if status < 400:
        return "ok"
    return "rejected" if status < 500 else "error"


class Sidecar:
    def __init__(self, config: SidecarConfig, sink: RecordSink, resolver: TenantResolver,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.upstream = config.upstream.rstrip("/")
        self.sink = sink
        self.resolver = resolver
        self._refused = 0
        self.clock = clock
        self.session: aiohttp.ClientSession | None = None
        self.reader = EngineReader(self.upstream + "/metrics", sink, engine=self.upstream,
                                   interval=config.engine_poll_interval, clock=clock,
                                   role=config.role)

    # -- lifecycle -------------------------------------------------------------------------
    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout,
                                        sock_read=self.config.read_timeout)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                             auto_decompress=False, skip_auto_headers=(
                                                 "User-Agent", "Accept-Encoding", "Accept"))
        poller = None
        if self.config.engine_poll_interval > 0:
            poller = asyncio.create_task(self.reader.run(self.session))
        yield
        if poller is not None:
            poller.cancel()
        await self.session.close()

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.cleanup_ctx.append(self.lifecycle)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # -- handling --------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        arrival = self.clock()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(request, arrival)
        headers = forward_headers(request.headers)
        url = upstream_url(self.upstream, request.raw_path)
        if not is_measured(request.method, request.path):
            return await self._passthrough(request, url, headers, body)
        req, body = self._start(request, body, arrival)
        headers.popall("Accept-Encoding", None)  # measured streams must arrive uncompressed
        headers["traceparent"] = req.trace.traceparent()  # the engine's spans nest under ours
        assert self.session is not None
        try:
            upstream = await self.session.request(request.method, url, headers=headers,
                                                  data=body, allow_redirects=False)
        except asyncio.CancelledError:
            self._finish(req, "cancelled", 499)
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._finish(req, "error", 502)
            return self._upstream_down(exc)
        try:
            if upstream.status == 200 and req.stream and _is_plain_sse(upstream):
                return await self._relay_stream(request, upstream, req)
            return await self._relay_whole(upstream, req)
        finally:
            # Keeps a fully read connection for reuse; closes (so cancels) an unfinished one.
            upstream.release()

    def _start(self, request: web.Request, body: bytes, arrival: float
               ) -> tuple[_Request, bytes]:
        parsed: Any = None
        with contextlib.suppress(ValueError, RecursionError):  # nested past Python's stack
            parsed = json.loads(body)
        is_json = isinstance(parsed, dict)
        payload: dict[str, Any] = parsed if is_json else {}
        stream = payload.get("stream") is True
        had_options = "stream_options" in payload
        strip_usage = ensure_stream_usage(payload) if stream else False
        if strip_usage and not had_options:  # the prompt's bytes pass untouched, uncopied
            start = body.index(b"{") + 1  # a JSON object: its first byte past whitespace
            body = b"".join((body[:start], ASK_USAGE, body[start:]))
        elif strip_usage:  # the client's own stream_options, merged
            body = json.dumps(payload, separators=(",", ":")).encode()
        model = payload.get("model")
        timer = StreamTimer(self.clock, arrival_time=arrival)
        tenancy = self.resolver.decide(request.headers, request.remote)
        req = _Request(
            request_id=uuid.uuid4().hex,  # ours: a client cannot make two requests one
            client_request_id=(request.headers.get("X-Request-Id") or "")[:128] or None,
            tenant=tenancy.tenant,
            model=model if isinstance(model, str) and model else UNKNOWN,
            feature=(request.headers.get(self.config.feature_header) or NO_FEATURE)[:64],
            endpoint=request.path,
            trace=start_span_context(request.headers, self.config.trace_sample_ratio),
            body_is_json=is_json, stream=stream, strip_usage=strip_usage, timer=timer)
        if tenancy.refused is not None:
            req.extra[TENANT_REFUSED] = "1"
            self._refused += 1
            if self._refused == 1 or self._refused % 1000 == 0:
                log.warning("tenant header refused from %s (untrusted sender; %d so far):"
                            " billed to %s, not the header's tenant", request.remote,
                            self._refused, tenancy.tenant)
        if self.config.capture_content and is_json:
            prompt = payload.get("messages", payload.get("prompt"))
            req.extra["gen_ai.input.messages"] = json.dumps(prompt)[: self.config.content_limit]
            req.output_parts = []
        return req, body

    async def _relay_stream(self, request: web.Request, upstream: aiohttp.ClientResponse,
                            req: _Request) -> web.StreamResponse:
        response = web.StreamResponse(status=upstream.status,
                                      headers=response_headers(upstream.headers))
        outcome: Outcome = "ok"
        try:
            splitter = SSESplitter()
            reading = False
            try:
                await response.prepare(request)
                reading = True
                async for data in upstream.content.iter_any():
                    now = self.clock()
                    out = self._inspect(req, splitter.feed(data), now)
                    if out:
                        reading = False
                        await response.write(out)
                        reading = True
                tail = splitter.flush()
                reading = False
                if tail:
                    await response.write(tail)
                await response.write_eof()
                if not req.done:  # ended cleanly but short of [DONE]: the answer is cut
                    outcome = "error"
                    req.extra["stream_incomplete"] = "1"
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = "error" if reading else "cancelled"
                log.info("stream %s broke off (%s): %s", req.request_id,
                         "upstream" if reading else "client", exc)
                if reading and request.transport is not None:
                    request.transport.close()  # the client sees the break, as from the engine
            except ConnectionResetError:
                outcome = "cancelled"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self._finish(req, outcome, upstream.status)
        return response

    def _inspect(self, req: _Request, events: list[bytes], now: float) -> bytes:
        forward: list[bytes] = []
        capture = req.output_parts
        for event in events:
            info = inspect_event(event, need_id=req.response_id is None or capture is not None)
            if info.done:
                req.done = True
            if info.has_token:
                req.timer.token_at(now)
                if capture is not None:
                    capture.append(info.text)
            if info.finish_reason:
                req.finish_reason = info.finish_reason
            if info.response_id and req.response_id is None:
                req.response_id = info.response_id
            if info.usage is not None:
                req.usage = info.usage
            if info.engine_metrics is not None:
                req.engine_metrics = info.engine_metrics
            if info.error:
                req.extra["stream_error"] = "1"
            if req.strip_usage and info.usage_only:
                continue
            forward.append(event)
        return b"".join(forward)

    async def _relay_whole(self, upstream: aiohttp.ClientResponse, req: _Request
                           ) -> web.Response:
        try:
            payload = await upstream.read()
        except asyncio.CancelledError:
            self._finish(req, "cancelled", upstream.status)
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._finish(req, "error", 502)
            return self._upstream_down(exc)
        if upstream.status < 300 and not upstream.headers.get("Content-Encoding"):
            self._read_whole_body(req, payload)
        self._finish(req, outcome_for_status(upstream.status), upstream.status)
        return web.Response(body=payload, status=upstream.status,
                            headers=response_headers(upstream.headers))

    @staticmethod
    def _read_whole_body(req: _Request, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        if isinstance(doc.get("usage"), dict):
            req.usage = doc["usage"]
        if isinstance(doc.get("metrics"), dict):
            req.engine_metrics = doc["metrics"]
        if isinstance(doc.get("id"), str):
            req.response_id = doc["id"]
        for choice in doc.get("choices") or []:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                req.finish_reason = str(choice["finish_reason"])
            if req.output_parts is not None and isinstance(choice, dict):
                message = choice.get("message")
                text = message.get("content") if isinstance(message, dict) else choice.get("text")
                if isinstance(text, str):
                    req.output_parts.append(text)

    async def _passthrough(self, request: web.Request, url: URL,
                           headers: CIMultiDict[str], body: bytes) -> web.StreamResponse:
        assert self.session is not None
        try:
            upstream = await self.session.request(request.method, url, headers=headers,
                                                  data=body or None, allow_redirects=False)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return self._upstream_down(exc)
        try:
            response = web.StreamResponse(status=upstream.status,
                                          headers=response_headers(upstream.headers))
            await response.prepare(request)
            async for data in upstream.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response
        finally:
            upstream.release()

    def _too_large(self, request: web.Request, arrival: float) -> web.Response:
        """413 for a body over --max-body-mib (nginx's client_max_body_size on the other
        plane): never buffered whole, recorded as rejected when the path is measured."""
        limit = self.config.max_body_bytes // (1024 * 1024)
        if is_measured(request.method, request.path):
            req, _ = self._start(request, b"", arrival)
            req.extra[BODY_TOO_LARGE] = "1"
            self._finish(req, "rejected", 413)
        body = {"error": {"message": f"the request body is larger than this sidecar's limit"
                          f" of {limit} MiB (--max-body-mib)",
                          "type": "request_too_large", "code": 413}}
        return web.json_response(body, status=413, headers={"Connection": "close"})

    def _upstream_down(self, exc: BaseException) -> web.Response:
        """502 to the client without the engine's address (internal), which is logged."""
        log.warning("engine %s did not answer: %s", self.upstream,
                    str(exc) or type(exc).__name__)
        body = {"error": {"message": "the inference engine did not answer",
                          "type": "upstream_unavailable", "code": 502}}
        return web.json_response(body, status=502)

    def _finish(self, req: _Request, outcome: Outcome, status: int) -> None:
        """Build the record and hand it off; never raises into the request."""
        try:
            if req.output_parts is not None:
                text = "".join(req.output_parts)[: self.config.content_limit]
                req.extra["gen_ai.output.messages"] = json.dumps(
                    [{"role": "assistant", "content": text}])
            prompt, output, cached = usage_counts(req.usage)
            spans, refused = engine_timing(req.engine_metrics)
            if refused:
                req.extra[ENGINE_TIMING_REFUSED] = "1"
            timer = req.timer
            if output is None and timer.first_token_time is not None:
                output = len(timer.gaps) + 1  # no usage (stream broke): count token chunks
            record = RequestRecord(
                request_id=req.request_id, client_request_id=req.client_request_id,
                tenant=req.tenant, model=req.model,
                feature=req.feature, endpoint=req.endpoint, arrival_time=timer.arrival_time,
                finish_time=self.clock(), outcome=outcome, http_status=status,
                first_token_time=timer.first_token_time, last_token_time=timer.last_token_time,
                inter_token_gaps=tuple(timer.gaps), prompt_tokens=prompt, output_tokens=output,
                cached_prompt_tokens=cached, finish_reason=req.finish_reason,
                streamed=req.stream, body_is_json=req.body_is_json,
                response_id=req.response_id, trace_id=req.trace.trace_id,
                span_id=req.trace.span_id, parent_span_id=req.trace.parent_span_id,
                trace_sampled=req.trace.sampled, pod=self.config.pod, role=self.config.role,
                extra=tuple(sorted(req.extra.items())), queue_time=spans.get("queue_time"),
                prefill_time=spans.get("prefill_time"), decode_time=spans.get("decode_time"),
                time_per_output_token=spans.get("time_per_output_token"))
            self.sink.record(record)
        except Exception:
            log.exception("could not record request %s", req.request_id)


def _is_plain_sse(upstream: aiohttp.ClientResponse) -> bool:
    return (upstream.content_type == "text/event-stream"
            and not upstream.headers.get("Content-Encoding"))


def is_measured(method: str, path: str) -> bool:
    """Only POSTs to the completion endpoints are timed; everything else passes through."""
    return method == "POST" and path in MEASURED_PATHS


def upstream_url(upstream: str, raw_path: str) -> URL:
    """The engine's URL for the client's path and query, byte for byte (no re-encoding)."""
    return URL(upstream.rstrip("/") + origin_form(raw_path), encoded=True)


def origin_form(target: str) -> str:
    """The request target as path and query. An absolute-form target (RFC 9112 §3.2.2,
    `GET http://host/v1/models`) loses its scheme and authority; any other form is `/`."""
    if target.startswith("/"):
        return target
    _scheme, sep, rest = target.partition("://")
    if not sep:
        return "/"
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    tail = rest[cut:].split("#", 1)[0]
    return tail if tail.startswith("/") else "/" + tail


def forward_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The client's headers for the engine, less hop-by-hop ones (RFC 9110 §7.6.1) and the
    tenant secret."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)


def response_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The engine's headers for the client, less hop-by-hop ones; aiohttp sets its own
    Date and Server."""
    return CIMultiDict((k, v) for k, v in headers.items()
                       if k.lower() not in HOP_BY_HOP and k.lower() != "date"
                       and k.lower() != "server")
