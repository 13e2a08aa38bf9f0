from dataclasses import replace

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from engine_shim.records import RequestRecord
from exporters.otel import FIRST_TOKEN_EVENT, OtelExporter

RECORD = RequestRecord(
    request_id="r1", tenant="acme", model="llama", feature="chat",
    endpoint="/v1/chat/completions", arrival_time=100.0, finish_time=101.5, outcome="ok",
    http_status=200, first_token_time=100.25, last_token_time=101.5,
    inter_token_gaps=(0.01, 0.02, 0.03, 0.5), prompt_tokens=30, output_tokens=5,
    cached_prompt_tokens=16, finish_reason="length", response_id="chatcmpl-9",
    trace_id="0af7651916cd43dd8448eb211c80319c", span_id="00f067aa0ba902b7",
    parent_span_id="b7ad6b7169203331")


def exporter(**kwargs: object) -> tuple[OtelExporter, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    return OtelExporter(service_name="test", processor=SimpleSpanProcessor(memory),
                        **kwargs), memory  # type: ignore[arg-type]


def test_span_has_the_ids_chosen_at_request_time_and_genai_attributes() -> None:
    otel, memory = exporter()
    otel.sink.record(RECORD)
    (span,) = memory.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == RECORD.trace_id
    assert f"{span.context.span_id:016x}" == RECORD.span_id
    assert span.parent is not None and f"{span.parent.span_id:016x}" == RECORD.parent_span_id
    assert span.name == "chat llama" and span.kind == SpanKind.CLIENT
    assert (span.start_time, span.end_time) == (100_000_000_000, 101_500_000_000)
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "vllm"
    assert attrs["gen_ai.request.model"] == attrs["gen_ai.response.model"] == "llama"
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (30, 5)
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 16
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert attrs["llmkpi.tenant"] == "acme" and attrs["llmkpi.feature"] == "chat"
    assert attrs["llmkpi.time_to_first_token"] == 0.25
    assert attrs["llmkpi.inter_token_latency.p50"] == 0.02
    assert attrs["llmkpi.inter_token_latency.p95"] == 0.5
    assert "gen_ai.usage.cost.amount" not in attrs
    assert not any("prompt" in k or "content" in k or "messages" in k for k in attrs)
    (event,) = span.events
    assert event.name == FIRST_TOKEN_EVENT and event.timestamp == 100_250_000_000


def test_root_span_cost_and_error_status() -> None:
    otel, memory = exporter(cost_of=lambda r: (0.00042, "USD"))
    otel.sink.record(replace(RECORD, parent_span_id=None, outcome="error", http_status=502))
    (span,) = memory.get_finished_spans()
    assert span.parent is None and f"{span.context.trace_id:032x}" == RECORD.trace_id
    assert span.status.status_code == StatusCode.ERROR
    attrs = dict(span.attributes or {})
    assert (attrs["gen_ai.usage.cost.amount"], attrs["gen_ai.usage.cost.currency"]) == (
        0.00042, "USD")


def test_unsampled_and_plugin_records() -> None:
    otel, memory = exporter()
    otel.sink.record(replace(RECORD, trace_sampled=False))
    assert memory.get_finished_spans() == ()
    otel.sink.record(replace(RECORD, trace_id=None, span_id=None, parent_span_id=None,
                             endpoint="engine", source="plugin"))
    (span,) = memory.get_finished_spans()
    assert span.name == "generate_content llama" and span.context.trace_id != 0
