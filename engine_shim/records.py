"""The one currency of the stack: frozen records of requests and engine state, and sinks.

Nothing downstream of the shim sees an engine object; every measurement becomes one of these.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Outcome = Literal["ok", "error", "cancelled", "rejected"]
OUTCOMES: tuple[Outcome, ...] = ("ok", "error", "cancelled", "rejected")

UNKNOWN = "unknown"
TENANT_REFUSED = "tenant_header_refused"  # in a record's extra: its header was not honoured
# vLLM's per-request metrics (`--enable-per-request-metrics`: `metrics` in the body, or in
# the last usage chunk of a stream), in milliseconds, and the record field each becomes:
# the engine's queue wait (on a P/D decode engine with the KV wait), scheduling to first
# token (its prefill; on a decode engine one step), first to last token, mean token gap
ENGINE_TIMINGS = (("queue_time_ms", "queue_time"), ("time_to_first_token_ms", "prefill_time"),
                  ("generation_time_ms", "decode_time"),
                  ("mean_itl_ms", "time_per_output_token"))
ENGINE_TIMING_REFUSED = "engine_timing_refused"  # in extra: a timing was negative or no number
_FIELDS: dict[type, frozenset[str]] = {}

@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One inference request as the shim saw it; times are seconds on the wall clock (epoch)."""

    request_id: str
    tenant: str
    model: str
    feature: str
    endpoint: str
    arrival_time: float
    finish_time: float
    outcome: Outcome
    http_status: int
    first_token_time: float | None = None
    last_token_time: float | None = None
    inter_token_gaps: tuple[float, ...] = ()
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    finish_reason: str | None = None
    streamed: bool = False
    body_is_json: bool = True
    response_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    trace_sampled: bool = True
    queue_time: float | None = None
    prefill_time: float | None = None
    decode_time: float | None = None
    time_per_output_token: float | None = None
    pod: str = ""
    source: Literal["sidecar", "plugin", "simulator"] = "sidecar"
    extra: tuple[tuple[str, str], ...] = field(default=())
    # the client's X-Request-Id (at most 128 characters): kept, never the record's key
    client_request_id: str | None = None
    # the engine's part in P/D disaggregation (LLMKPI_ROLE): "prefill" marks a request an
    # engine prefilled for another (llm-d's routing sidecar sends it with max_tokens 1): it
    # is the prefill pod's GPU work, never a client's request; "decode" or "" a client's
    role: str = ""

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from arrival to the first generated token, when a token was seen."""
        if self.first_token_time is None:
            return None
        return self.first_token_time - self.arrival_time

    @property
    def e2e_latency(self) -> float:
        """Seconds from arrival until the response ended, whatever the outcome."""
        return self.finish_time - self.arrival_time

    @property
    def mean_inter_token_latency(self) -> float | None:
        if not self.inter_token_gaps:
            return None
        return math.fsum(self.inter_token_gaps) / len(self.inter_token_gaps)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; `from_dict` reads it back."""
        out = dataclasses.asdict(self)
        out["inter_token_gaps"] = list(self.inter_token_gaps)
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestRecord:
        known = _FIELDS.get(cls)
        if known is None:  # once per class: the journal reads one record per request
            known = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
        unknown = data.keys() - known
        if unknown:
            raise ValueError(f"RequestRecord: unknown field(s) {sorted(unknown)}")
        values = dict(data)
        values["inter_token_gaps"] = tuple(values.get("inter_token_gaps") or ())
        values["extra"] = tuple(sorted((values.get("extra") or {}).items()))
        if values.get("outcome") not in OUTCOMES:
            raise ValueError(f"RequestRecord: field 'outcome' must be one of {OUTCOMES}")
        return cls(**values)


def possible_span(value: object) -> float | None:
    """A duration an engine measured, or None when it is impossible: not a number, not
    finite, or negative (vLLM reports such for some aborted requests, vllm#49135). The one
    rule for the sidecar's and the plugin's engine spans: refused, never clamped to a guess."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def engine_timing(metrics: object) -> tuple[dict[str, float], bool]:
    """The record's engine spans (seconds) from vLLM's per-request metrics, and whether any
    value was refused (`possible_span`): a refused span is left unknown."""
    if not isinstance(metrics, dict):
        return {}, False
    spans: dict[str, float] = {}
    refused = False
    for key, field_name in ENGINE_TIMINGS:
        value = metrics.get(key)
        if value is None:
            continue
        span = possible_span(value)
        if span is None:
            refused = True
            continue
        spans[field_name] = span / 1000.0
    return spans, refused


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """Engine state at one instant, read from the engine's /metrics or its in-process stats.

    Counters are cumulative as the engine reports them; None means the engine does not expose it.
    """

    time: float
    engine: str
    model: str
    up: bool
    kv_cache_usage: float | None = None
    requests_running: float | None = None
    requests_waiting: float | None = None
    preemptions_total: float | None = None
    prefix_cache_queries_total: float | None = None
    prefix_cache_hits_total: float | None = None
    prompt_tokens_total: float | None = None
    generation_tokens_total: float | None = None
    engine_kind: str = UNKNOWN
    matched_names: tuple[str, ...] = ()
    # data-parallel engines behind this server: kv_cache_usage is their mean, _max the fullest
    engines: int = 1
    kv_cache_usage_max: float | None = None
    role: str = ""  # prefill | decode (P/D), "" when one pod does both
    requests_waiting_deferred: float | None = None  # waiting on a KV transfer or LoRA budget
    prompt_tokens_computed_total: float | None = None
    prompt_tokens_cache_hit_total: float | None = None
    prompt_tokens_transferred_total: float | None = None
    kv_transfer_seconds_total: float | None = None
    kv_transfers_total: float | None = None
    kv_transfer_bytes_total: float | None = None
    kv_transfer_failures_total: float | None = None
    kv_expired_total: float | None = None


@runtime_checkable
class RecordSink(Protocol):
    """Where finished measurements go. Implementations must never raise into the caller."""

    def record(self, record: RequestRecord) -> None: ...

    def record_snapshot(self, snapshot: EngineSnapshot) -> None: ...

    def close(self) -> None: ...
