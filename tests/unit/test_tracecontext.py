import pytest

from engine_shim.tracecontext import sampled_by_ratio, start_span_context

INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_an_incoming_trace_is_continued_with_a_new_span() -> None:
    ctx = start_span_context({"traceparent": INCOMING})
    assert ctx.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert ctx.parent_span_id == "b7ad6b7169203331"
    assert ctx.span_id != ctx.parent_span_id and len(ctx.span_id) == 16
    assert ctx.sampled
    assert ctx.traceparent() == f"00-{ctx.trace_id}-{ctx.span_id}-01"


def test_the_parents_unsampled_flag_wins_over_the_ratio() -> None:
    ctx = start_span_context({"traceparent": INCOMING[:-2] + "00"}, sample_ratio=1.0)
    assert not ctx.sampled and ctx.traceparent().endswith("-00")


@pytest.mark.parametrize("bad", ["", "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01",
                                 "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01",
                                 "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
def test_invalid_traceparent_starts_a_new_root(bad: str) -> None:
    ctx = start_span_context({"traceparent": bad})
    assert ctx.parent_span_id is None and len(ctx.trace_id) == 32


def test_ratio_sampling_follows_the_trace_id() -> None:
    low = "f" * 16 + "0" * 16
    high = "0" * 16 + "f" * 16
    assert sampled_by_ratio(low, 0.5) and not sampled_by_ratio(high, 0.5)
    assert sampled_by_ratio(high, 1.0) and not sampled_by_ratio(low, 0.0)
    decided = [start_span_context({}, 0.25).sampled for _ in range(4000)]
    assert 0.2 < sum(decided) / len(decided) < 0.3
