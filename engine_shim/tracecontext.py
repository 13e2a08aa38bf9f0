"""W3C trace context for the sidecar: continue the caller's trace, decide sampling, inject ours.

The sidecar's span is built after the request ends (off the request path), but its id must
be known before the request is forwarded, so the engine's own spans nest under it. The ids
are therefore chosen here and carried in the RequestRecord.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    sampled: bool

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def sampled_by_ratio(trace_id: str, ratio: float) -> bool:
    """OpenTelemetry's TraceIdRatioBased rule: the low 64 bits of the id under ratio x 2^64."""
    if ratio >= 1.0:
        return True
    if ratio <= 0.0:
        return False
    return int(trace_id[16:], 16) < round(ratio * 2**64)


def start_span_context(headers: Mapping[str, str], sample_ratio: float = 1.0) -> TraceContext:
    """Our span's context: child of a valid incoming traceparent (whose sampled flag wins,
    as ParentBased samplers do), else the root of a new trace sampled by ratio."""
    span_id = _new_span_id()
    match = _TRACEPARENT_RE.match(headers.get("traceparent", "").strip().lower())
    if match and match[1] != "ff" and match[2] != _ZERO_TRACE and match[3] != _ZERO_SPAN:
        return TraceContext(match[2], span_id, match[3], bool(int(match[4], 16) & 1))
    trace_id = secrets.token_hex(16)
    return TraceContext(trace_id, span_id, None, sampled_by_ratio(trace_id, sample_ratio))


def _new_span_id() -> str:
    while True:
        span_id = secrets.token_hex(8)
        if span_id != _ZERO_SPAN:
            return span_id
