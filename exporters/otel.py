"""OpenTelemetry sink: one span per request, GenAI semantic conventions, OTLP export.

Spans are built after the request ended, on a sink thread, with the trace and span ids the
sidecar chose (and injected upstream) when the request arrived, so the engine's own spans
nest under ours and Prometheus exemplars point at the same trace. A batch processor exports
them; an exporter that fails or hangs never reaches the request path.
"""

from __future__ import annotations

import importlib.metadata
import math
import secrets
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from engine_shim.records import EngineSnapshot, RequestRecord

CostOf = Callable[[RequestRecord], tuple[float, str] | None]
OPERATIONS = {"/v1/chat/completions": "chat", "/v1/completions": "text_completion"}
FIRST_TOKEN_EVENT = "gen_ai.first_token"


class PresetIdGenerator(IdGenerator):
    """Hands the SDK the ids chosen at request time; random ids when none is preset."""

    def __init__(self) -> None:
        self._next = threading.local()

    def preset(self, trace_id: str | None, span_id: str | None) -> None:
        self._next.trace_id = int(trace_id, 16) if trace_id else None
        self._next.span_id = int(span_id, 16) if span_id else None

    def generate_span_id(self) -> int:
        span_id = getattr(self._next, "span_id", None)
        self._next.span_id = None
        return span_id or int(secrets.token_hex(8), 16) or 1

    def generate_trace_id(self) -> int:
        trace_id = getattr(self._next, "trace_id", None)
        self._next.trace_id = None
        return trace_id or int(secrets.token_hex(16), 16) or 1


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def span_attributes(record: RequestRecord, provider_name: str) -> dict[str, Any]:
    """GenAI semantic-convention attributes plus llmkpi's own, for one request."""
    operation = OPERATIONS.get(record.endpoint, "generate_content")
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider_name,
        "gen_ai.request.model": record.model,
        "gen_ai.response.model": record.model,
        "llmkpi.tenant": record.tenant,
        "llmkpi.feature": record.feature,
        "llmkpi.outcome": record.outcome,
        "llmkpi.source": record.source,
        "llmkpi.request.id": record.request_id,
        "llmkpi.e2e_latency": record.e2e_latency,
    }
    optional: dict[str, Any] = {
        "gen_ai.response.id": record.response_id,
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": record.cached_prompt_tokens,
        "gen_ai.response.finish_reasons": [record.finish_reason] if record.finish_reason
        else None,
        "http.response.status_code": record.http_status or None,
        "llmkpi.time_to_first_token": record.time_to_first_token,
        "llmkpi.request_queue_time": record.queue_time,
        "llmkpi.pod": record.pod or None,
        "llmkpi.role": record.role or None,  # prefill: a P/D prefill pod's part of a request
    }
    if record.inter_token_gaps:
        gaps = sorted(record.inter_token_gaps)
        optional["llmkpi.inter_token_latency.p50"] = _quantile(gaps, 0.5)
        optional["llmkpi.inter_token_latency.p95"] = _quantile(gaps, 0.95)
    attrs.update({k: v for k, v in optional.items() if v is not None})
    for key, value in record.extra:
        if key.startswith("gen_ai."):  # opt-in content capture puts messages here
            attrs[key] = value
    return attrs


class OtelSink:
    """RecordSink that turns each request record into one finished span."""

    name = "otel"

    def __init__(self, tracer: trace.Tracer, ids: PresetIdGenerator, *,
                 provider_name: str = "vllm", cost_of: CostOf | None = None,
                 shutdown: Callable[[], None] | None = None) -> None:
        self.tracer, self.ids = tracer, ids
        self._shutdown = shutdown
        self.provider_name = provider_name
        self.cost_of = cost_of

    def record(self, record: RequestRecord) -> None:
        if not record.trace_sampled:
            return
        attrs = span_attributes(record, self.provider_name)
        cost = self.cost_of(record) if self.cost_of else None
        if cost is not None:
            attrs["gen_ai.usage.cost.amount"], attrs["gen_ai.usage.cost.currency"] = cost
        parent = Context()
        if record.parent_span_id and record.trace_id:
            remote = SpanContext(int(record.trace_id, 16), int(record.parent_span_id, 16),
                                 is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        self.ids.preset(record.trace_id, record.span_id)
        name = f"{attrs['gen_ai.operation.name']} {record.model}"
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.CLIENT,
                                      attributes=attrs, start_time=_ns(record.arrival_time))
        if record.first_token_time is not None:
            span.add_event(FIRST_TOKEN_EVENT, timestamp=_ns(record.first_token_time))
        if record.outcome != "ok":
            span.set_status(Status(StatusCode.ERROR, record.outcome))
        span.end(end_time=_ns(record.finish_time))

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        """Engine state is a metric, not a trace."""

    def close(self) -> None:
        """Flush what the batch processor still holds (bounded by the exporter's timeout)."""
        if self._shutdown is not None:
            self._shutdown()


class OtelExporter:
    """Tracer provider with preset ids, a batch processor and the OTLP exporter."""

    def __init__(self, *, service_name: str, exporter: SpanExporter | None = None,
                 processor: SpanProcessor | None = None, provider_name: str = "vllm",
                 cost_of: CostOf | None = None) -> None:
        self.ids = PresetIdGenerator()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                                       id_generator=self.ids, sampler=ALWAYS_ON)
        if processor is None:
            processor = BatchSpanProcessor(exporter or otlp_exporter(None, "http/protobuf"))
        self.provider.add_span_processor(processor)
        self.sink = OtelSink(self.provider.get_tracer("llmkpi", _version()), self.ids,
                             provider_name=provider_name, cost_of=cost_of,
                             shutdown=self.provider.shutdown)

    def close(self) -> None:
        self.provider.shutdown()  # flushes what the batch processor still holds


def _version() -> str:
    try:
        return importlib.metadata.version("llmkpi")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def otlp_exporter(endpoint: str | None, protocol: str) -> SpanExporter:
    """OTLP over HTTP/protobuf (default) or gRPC; None endpoint = the OTEL_* variables."""
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise ValueError("OTLP over gRPC needs the 'grpc' extra: pip install"
                             " 'llmkpi[grpc]'") from None
        grpc: SpanExporter = GrpcExporter(endpoint=endpoint) if endpoint else GrpcExporter()
        return grpc
    if protocol != "http/protobuf":
        raise ValueError(f"OTLP protocol {protocol!r}: use http/protobuf or grpc")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if endpoint:
        return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=5)
    return OTLPSpanExporter(timeout=5)
