"""Server-sent-event inspection for OpenAI-compatible streams: token times and the usage chunk.

The proxy feeds raw bytes as they arrive; complete events come back with what they carry.
Nothing here touches the network, so every rule is unit-tested with plain bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_EVENT_END = (b"\n\n", b"\r\n\r\n")


class SSESplitter:
    """Cuts a byte stream into whole SSE events (each ending with a blank line)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        events: list[bytes] = []
        start = 0
        while True:
            cut, width = _next_boundary(buffer, start)
            if cut < 0:
                break
            events.append(buffer[start : cut + width])
            start = cut + width
        self._buffer = buffer[start:]
        return events

    def flush(self) -> bytes:
        """Whatever arrived after the last complete event (an upstream that broke off)."""
        rest, self._buffer = self._buffer, b""
        return rest


def _next_boundary(buffer: bytes, start: int) -> tuple[int, int]:
    best, width = -1, 0
    for marker in _EVENT_END:
        pos = buffer.find(marker, start)
        if pos >= 0 and (best < 0 or pos < best):
            best, width = pos, len(marker)
    return best, width


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What one SSE event carries, as far as measurement cares."""

    done: bool = False
    has_token: bool = False
    usage: dict[str, Any] | None = None
    usage_only: bool = False
    finish_reason: str | None = None
    response_id: str | None = None
    error: bool = False
    text: str = ""
    engine_metrics: dict[str, Any] | None = None  # vLLM's per-request metrics (usage chunk)


_NOTHING = EventInfo()
_DONE = EventInfo(done=True)
_TOKEN = EventInfo(has_token=True)

# Fast path: an ordinary token chunk mentions none of these keys with a value worth reading.
# Inside JSON strings quotes are escaped (\"usage\"), so text cannot fake a match; a false
# alarm only sends the event down the full JSON parse, which is always right.
_NEEDS_PARSE = re.compile(rb'"(?:usage|error)"\s*:\s*(?!null)|"finish_reason"\s*:\s*"')
_HAS_TOKEN = re.compile(
    rb'"(?:content|text|reasoning_content)"\s*:\s*"(?!")|"tool_calls"\s*:\s*\[\s*\{')


def inspect_event(event: bytes, *, need_id: bool = True) -> EventInfo:
    """Read one SSE event of a completions or chat-completions stream.

    With `need_id=False` (the response id is already known) ordinary token chunks are
    classified from their bytes without decoding JSON: ~5x cheaper on the proxy's hot path.
    """
    data = _event_data(event)
    if data is None:
        return _NOTHING
    if data == b"[DONE]":
        return _DONE
    if not need_id and data[:1] == b"{" and _NEEDS_PARSE.search(data) is None:
        return _TOKEN if _HAS_TOKEN.search(data) else _NOTHING
    return _parse_event(data)


def _parse_event(data: bytes) -> EventInfo:
    try:
        payload = json.loads(data)
    except ValueError:
        return _NOTHING
    if not isinstance(payload, dict):
        return _NOTHING
    if "error" in payload and "choices" not in payload:
        return EventInfo(error=True)
    choices = payload.get("choices") or []
    has_token = False
    finish_reason = None
    text = ""
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if _choice_has_token(choice):
            has_token = True
            text += _choice_text(choice)
        if choice.get("finish_reason"):
            finish_reason = str(choice["finish_reason"])
    usage = payload.get("usage")
    usage = usage if isinstance(usage, dict) else None
    response_id = payload.get("id")
    metrics = payload.get("metrics")
    return EventInfo(
        engine_metrics=metrics if isinstance(metrics, dict) else None,
        has_token=has_token,
        usage=usage,
        usage_only=usage is not None and not choices,
        finish_reason=finish_reason,
        response_id=response_id if isinstance(response_id, str) else None,
        text=text,
    )


def _event_data(event: bytes) -> bytes | None:
    if event.startswith(b"data: ") and event.count(b"\n") <= 2 and b"\r" not in event:
        return event[6:].rstrip(b"\n")  # one data line: the common case, no list building
    lines = [line for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[5:].strip() for line in lines)


def _choice_has_token(choice: dict[str, Any]) -> bool:
    if choice.get("text"):
        return True
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return bool(
            delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls")
        )
    return False


@dataclass(slots=True)
class StreamTimer:
    """Turns token arrival instants into TTFT, every inter-token gap and the last-token time."""

    clock: Callable[[], float]
    arrival_time: float = 0.0
    first_token_time: float | None = None
    last_token_time: float | None = None
    gaps: list[float] = field(default_factory=list)

    def start(self) -> float:
        self.arrival_time = self.clock()
        return self.arrival_time

    def token_at(self, when: float) -> None:
        if self.first_token_time is None:
            self.first_token_time = when
        elif self.last_token_time is not None:
            self.gaps.append(when - self.last_token_time)
        self.last_token_time = when


def _choice_text(choice: dict[str, Any]) -> str:
    if isinstance(choice.get("text"), str):
        return str(choice["text"])
    delta = choice.get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def usage_counts(usage: dict[str, Any] | None) -> tuple[int | None, int | None, int | None]:
    """(prompt, completion, cached prompt) tokens from an OpenAI `usage` object."""
    if not usage:
        return None, None, None
    prompt = _as_int(usage.get("prompt_tokens"))
    completion = _as_int(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _as_int(details.get("cached_tokens")) if isinstance(details, dict) else None
    return prompt, completion, cached


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def ensure_stream_usage(body: dict[str, Any]) -> bool:
    """Ask the engine for usage in the stream; True when the client had not asked itself."""
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return False
    merged = dict(options) if isinstance(options, dict) else {}
    merged["include_usage"] = True
    body["stream_options"] = merged
    return True
