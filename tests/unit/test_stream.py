import json

import pytest

from engine_shim.stream import (
    SSESplitter,
    StreamTimer,
    ensure_stream_usage,
    inspect_event,
    usage_counts,
)


def sse(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


CHAT_ROLE = sse({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                  "content": ""}}]})
CHAT_TOKEN = sse({"id": "c1", "choices": [{"index": 0, "delta": {"content": "hi"}}]})
CHAT_LAST = sse({"id": "c1", "choices": [{"index": 0, "delta": {"content": "!"},
                                          "finish_reason": "length"}]})
USAGE = sse({"id": "c1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2,
                                                  "prompt_tokens_details": {"cached_tokens": 4}}})


def test_splitter_reassembles_events_cut_anywhere() -> None:
    stream = CHAT_ROLE + CHAT_TOKEN + b": keep-alive\r\n\r\n" + USAGE + b"data: [DONE]\n\n"
    for cut in range(1, len(stream)):
        splitter = SSESplitter()
        events = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:])
        assert b"".join(events) == stream, cut
        assert len(events) == 5
        assert splitter.flush() == b""


def test_splitter_keeps_an_unfinished_tail_for_flush() -> None:
    splitter = SSESplitter()
    assert splitter.feed(CHAT_TOKEN + b"data: {\"trunc") == [CHAT_TOKEN]
    assert splitter.flush() == b"data: {\"trunc"


@pytest.mark.parametrize(
    ("event", "has_token", "usage_only", "finish", "done"),
    [
        (CHAT_ROLE, False, False, None, False),
        (CHAT_TOKEN, True, False, None, False),
        (CHAT_LAST, True, False, "length", False),
        (USAGE, False, True, None, False),
        (sse({"choices": [{"text": "word", "index": 0}]}), True, False, None, False),
        (sse({"choices": [{"delta": {"tool_calls": [{"id": "x"}]}}]}), True, False, None, False),
        (b"data: [DONE]\n\n", False, False, None, True),
        (b": comment\n\n", False, False, None, False),
        (b"data: not json\n\n", False, False, None, False),
    ],
    ids=["role", "token", "last", "usage", "completion-text", "tool-call", "done", "comment",
         "garbage"],
)
def test_inspect_event(event: bytes, has_token: bool, usage_only: bool, finish: str | None,
                       done: bool) -> None:
    info = inspect_event(event)
    assert (info.has_token, info.usage_only, info.finish_reason, info.done) == (
        has_token, usage_only, finish, done)


def test_engine_error_event_is_flagged() -> None:
    assert inspect_event(sse({"error": {"message": "boom"}})).error


def test_usage_counts_reads_cached_tokens() -> None:
    assert usage_counts(inspect_event(USAGE).usage) == (7, 2, 4)
    assert usage_counts(None) == (None, None, None)
    assert usage_counts({"prompt_tokens": True}) == (None, None, None)


def test_timer_with_injected_clock() -> None:
    ticks = iter([100.0])
    timer = StreamTimer(clock=lambda: next(ticks))
    timer.start()
    for t in (100.25, 100.30, 100.30, 100.45):
        timer.token_at(t)
    assert timer.first_token_time == 100.25
    assert timer.last_token_time == 100.45
    assert timer.gaps == pytest.approx([0.05, 0.0, 0.15])


def test_ensure_stream_usage_reports_whether_client_asked() -> None:
    body: dict[str, object] = {"stream": True}
    assert ensure_stream_usage(body) is True
    assert body["stream_options"] == {"include_usage": True}
    asked = {"stream": True, "stream_options": {"include_usage": True}}
    assert ensure_stream_usage(asked) is False
    other = {"stream": True, "stream_options": {"continuous_usage_stats": False}}
    assert ensure_stream_usage(other) is True
    assert other["stream_options"] == {"continuous_usage_stats": False, "include_usage": True}


# -- the byte-level fast path must agree with the JSON path --------------------------------
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

texts = st.one_of(st.just(""), st.text(max_size=12),
                  st.sampled_from(['"usage"', '\\"', '"finish_reason":"stop"', "{}", "[DONE]",
                                   '"content":"x"']))


@st.composite
def chunks(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(["chat", "completion", "tool", "usage", "error"]))
    if kind == "usage":
        return {"id": "a", "choices": [], "usage": {"prompt_tokens": draw(st.integers(0, 9)),
                                                     "completion_tokens": 1}}
    if kind == "error":
        return {"error": {"message": draw(texts)}}
    finish = draw(st.sampled_from([None, "stop", "length"]))
    if kind == "completion":
        choice: dict[str, object] = {"index": 0, "text": draw(texts), "finish_reason": finish}
    elif kind == "tool":
        choice = {"index": 0, "delta": {"tool_calls": draw(st.sampled_from(
            [[], [{"id": "t", "function": {"arguments": "{}"}}]]))}, "finish_reason": finish}
    else:
        delta = {"content": draw(texts)}
        if draw(st.booleans()):
            delta["role"] = "assistant"
        if draw(st.booleans()):
            delta["reasoning_content"] = draw(texts)
        choice = {"index": 0, "delta": delta, "finish_reason": finish,
                  "logprobs": draw(st.sampled_from([None, {"content": [{"token": "x"}]}]))}
    out: dict[str, object] = {"id": "chatcmpl-1", "object": "chunk", "choices": [choice]}
    if draw(st.booleans()):
        out["usage"] = None
    return out


@given(chunks(), st.booleans(), st.booleans())
def test_fast_path_agrees_with_full_parse(chunk: dict[str, object], spaced: bool,
                                          ascii_only: bool) -> None:
    separators = (", ", ": ") if spaced else (",", ":")
    event = b"data: " + json.dumps(chunk, separators=separators,
                                   ensure_ascii=ascii_only).encode() + b"\n\n"
    full = inspect_event(event, need_id=True)
    fast = inspect_event(event, need_id=False)
    assert fast.has_token == full.has_token
    assert fast.usage == full.usage and fast.usage_only == full.usage_only
    assert fast.finish_reason == full.finish_reason and fast.error == full.error
