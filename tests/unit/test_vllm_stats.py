"""The plugin's conversion of vLLM stats, with plain fakes shaped like vLLM's dataclasses."""

import enum
from dataclasses import dataclass, field

import pytest

from engine_shim.vllm_stats import PluginState, finish_reason_name, record_from_finished


class FinishReason(enum.IntEnum):  # as vllm.v1.engine.FinishReason
    STOP = 0
    LENGTH = 1
    ABORT = 2


@dataclass
class FinishedRequestStats:
    finish_reason: FinishReason
    request_id: str | None = None
    e2e_latency: float = 0.0
    num_prompt_tokens: int = 0
    num_preemptions: int = 0
    num_generation_tokens: int = 0
    queued_time: float = 0.0
    prefill_time: float = 0.0
    inference_time: float = 0.0
    decode_time: float = 0.0
    mean_time_per_output_token: float = 0.0
    num_cached_tokens: int = 0


@dataclass
class PrefixCacheStats:
    queries: int = 0
    hits: int = 0


@dataclass
class SchedulerStats:
    num_running_reqs: int = 0
    num_waiting_reqs: int = 0
    num_skipped_waiting_reqs: int = 0
    kv_cache_usage: float = 0.0
    prefix_cache_stats: PrefixCacheStats = field(default_factory=PrefixCacheStats)


@dataclass
class IterationStats:
    iteration_timestamp: float = 0.0
    num_generation_tokens: int = 0
    num_prompt_tokens: int = 0
    num_preempted_reqs: int = 0
    finished_requests: list[FinishedRequestStats] = field(default_factory=list)


def test_finished_request_becomes_a_record() -> None:
    stats = FinishedRequestStats(FinishReason.LENGTH, "chatcmpl-1", e2e_latency=2.0,
                                 num_prompt_tokens=40, num_generation_tokens=11,
                                 queued_time=0.1, prefill_time=0.2, decode_time=1.5,
                                 mean_time_per_output_token=0.15, num_cached_tokens=16,
                                 num_preemptions=1)
    record = record_from_finished(stats, finished_at=1000.0, model="tiny", pod="p")
    assert record.arrival_time == 998.0 and record.finish_time == 1000.0
    assert record.time_to_first_token == pytest.approx(0.5)  # e2e - decode
    assert (record.prompt_tokens, record.output_tokens, record.cached_prompt_tokens) == (40, 11,
                                                                                          16)
    assert record.finish_reason == "length" and record.outcome == "ok"
    assert record.response_id == "chatcmpl-1" and record.source == "plugin"
    assert (record.queue_time, record.prefill_time, record.decode_time) == (0.1, 0.2, 1.5)
    assert dict(record.extra) == {"preemptions": "1"}


def test_impossible_timings_of_an_aborted_request_are_refused_not_guessed() -> None:
    """vLLM can report garbage spans for aborted requests: a negative e2e and a NaN decode
    are left unknown and marked; the valid queue span is kept."""
    stats = FinishedRequestStats(FinishReason.ABORT, "r-9", e2e_latency=-5.0,
                                 num_generation_tokens=3, queued_time=0.25,
                                 prefill_time=0.5, decode_time=float("nan"))
    record = record_from_finished(stats, finished_at=1000.0, model="tiny", pod="p")
    assert record.arrival_time == 1000.0  # e2e unknown: no span invented
    assert record.first_token_time is None and record.decode_time is None
    assert (record.queue_time, record.prefill_time) == (0.25, 0.5)
    assert dict(record.extra)["engine_timing_refused"] == "e2e_latency,decode_time"
    assert record.outcome == "cancelled"


@pytest.mark.parametrize(("reason", "name", "outcome"), [
    (FinishReason.STOP, "stop", "ok"), (FinishReason.ABORT, "abort", "cancelled"),
    ("length", "length", "ok"), ("FinishReason.ERROR", "error", "error")])
def test_finish_reasons(reason: object, name: str, outcome: str) -> None:
    assert finish_reason_name(reason) == name
    record = record_from_finished(FinishedRequestStats(reason), finished_at=1.0,  # type: ignore[arg-type]
                                  model="m", pod="")
    assert record.outcome == outcome


def test_counters_accumulate_and_snapshots_are_throttled() -> None:
    now = [100.0]
    state = PluginState(model="tiny", engine="engine-0", pod="p", clock=lambda: now[0],
                        snapshot_interval=1.0)
    step = SchedulerStats(num_running_reqs=3, num_waiting_reqs=1, num_skipped_waiting_reqs=1,
                          kv_cache_usage=0.25, prefix_cache_stats=PrefixCacheStats(10, 4))
    it = IterationStats(iteration_timestamp=100.0, num_generation_tokens=3,
                        num_prompt_tokens=10, num_preempted_reqs=1)
    first, _ = state.update(step, it)
    assert first is not None and first.kv_cache_usage == 0.25
    assert (first.requests_running, first.requests_waiting) == (3, 2)
    now[0] = 100.5
    second, _ = state.update(step, it)
    assert second is None  # within the interval: counted, not sent
    now[0] = 101.2
    third, records = state.update(step, IterationStats(finished_requests=[
        FinishedRequestStats(FinishReason.STOP, "x", e2e_latency=1.0)]))
    assert third is not None and records[0].request_id == "x"
    assert third.preemptions_total == 2 and third.prefix_cache_hits_total == 12
    assert third.prefix_cache_queries_total == 30 and third.generation_tokens_total == 6


def test_missing_stats_are_tolerated() -> None:
    state = PluginState(model="m", engine="e", pod="", clock=lambda: 0.0)
    assert state.update(None, None) == (None, [])
    assert state.update(object(), object())[0] is not None


def test_going_idle_is_never_throttled_away() -> None:
    now = [10.0]
    state = PluginState(model="m", engine="e", pod="", clock=lambda: now[0])
    busy = SchedulerStats(num_running_reqs=2, kv_cache_usage=0.5)
    assert state.update(busy, None)[0] is not None
    now[0] = 10.1
    assert state.update(busy, None)[0] is None
    now[0] = 10.2
    idle, _ = state.update(SchedulerStats(), None)
    assert idle is not None and idle.kv_cache_usage == 0 and idle.requests_running == 0
    now[0] = 10.3
    again, _ = state.update(busy, None)
    assert again is not None  # busy again: shown at once
