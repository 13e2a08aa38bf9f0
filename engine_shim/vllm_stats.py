"""vLLM's scheduler and iteration stats as our records: the plugin's logic, free of vLLM imports.

vLLM calls its stat loggers once per engine step with `SchedulerStats` (a snapshot of the
scheduler) and `IterationStats` (what happened in the step, including finished requests).
Counters arrive as per-step increments, so they are accumulated here. The stats classes are
"not considered stable interfaces" by vLLM, so every attribute is read with a default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine_shim.records import (
    ENGINE_TIMING_REFUSED,
    EngineSnapshot,
    Outcome,
    RequestRecord,
    possible_span,
)

NO_FEATURE = "none"
ENGINE_ENDPOINT = "engine"


def finish_reason_name(reason: Any) -> str:
    """vLLM's FinishReason enum (STOP, LENGTH, ABORT, ...) or str as OpenAI's lower-case word."""
    name = getattr(reason, "name", None) or str(reason)
    return str(name).rsplit(".", 1)[-1].lower()


def outcome_for_finish(reason: str) -> Outcome:
    if reason == "abort":
        return "cancelled"
    if reason == "error":
        return "error"
    return "ok"


def record_from_finished(stats: Any, *, finished_at: float, model: str, pod: str,
                         role: str = "") -> RequestRecord:
    """One FinishedRequestStats as a RequestRecord (times on the wall clock).

    vLLM gives e2e latency from the frontend's arrival, and queue / prefill / decode spans from
    the engine core. The first token came one decode span before the last:
    first token = finish - decode time.
    """
    refused: list[str] = []

    def span(name: str) -> float | None:
        value = getattr(stats, name, None)
        checked = possible_span(value) if value is not None else None
        if value is not None and checked is None:
            refused.append(name)
        return checked

    e2e = span("e2e_latency") or 0.0
    decode, queued, prefill = span("decode_time"), span("queued_time"), span("prefill_time")
    extra = [("preemptions", str(int(getattr(stats, "num_preemptions", 0))))]
    if refused:
        extra.append((ENGINE_TIMING_REFUSED, ",".join(refused)))
    output = int(getattr(stats, "num_generation_tokens", 0))
    reason = finish_reason_name(getattr(stats, "finish_reason", "unknown"))
    request_id = getattr(stats, "request_id", None) or ""
    tpot = getattr(stats, "mean_time_per_output_token", None)
    return RequestRecord(
        request_id=request_id, tenant="unknown", model=model, feature=NO_FEATURE,
        endpoint=ENGINE_ENDPOINT, arrival_time=finished_at - e2e, finish_time=finished_at,
        outcome=outcome_for_finish(reason), http_status=0,
        first_token_time=finished_at - decode if output > 0 and decode is not None else None,
        last_token_time=finished_at if output > 0 else None,
        prompt_tokens=int(getattr(stats, "num_prompt_tokens", 0)), output_tokens=output,
        cached_prompt_tokens=int(getattr(stats, "num_cached_tokens", 0)),
        finish_reason=reason, streamed=False, response_id=request_id or None,
        queue_time=queued, prefill_time=prefill, decode_time=decode,
        time_per_output_token=possible_span(tpot) or None, pod=pod,  # 0: none measured
        role=role, source="plugin", extra=tuple(sorted(extra)))


@dataclass
class PluginState:
    """Accumulates vLLM's per-step increments; snapshots at most every `snapshot_interval`.

    A flip between idle and busy always yields a snapshot: vLLM sends one last stats update
    when it goes idle, and dropping it would leave KV usage and running counts stale.
    """

    model: str
    engine: str
    pod: str
    clock: Callable[[], float]
    role: str = ""  # LLMKPI_ROLE of the pod (RequestRecord.role)
    snapshot_interval: float = 1.0
    preemptions_total: float = 0.0
    prefix_queries_total: float = 0.0
    prefix_hits_total: float = 0.0
    prompt_tokens_total: float = 0.0
    generation_tokens_total: float = 0.0
    last_snapshot: float = field(default=float("-inf"))
    last_idle: bool | None = None

    def update(self, scheduler_stats: Any, iteration_stats: Any
               ) -> tuple[EngineSnapshot | None, list[RequestRecord]]:
        records: list[RequestRecord] = []
        now = self.clock()
        if iteration_stats is not None:
            self.preemptions_total += getattr(iteration_stats, "num_preempted_reqs", 0)
            self.prompt_tokens_total += getattr(iteration_stats, "num_prompt_tokens", 0)
            self.generation_tokens_total += getattr(iteration_stats, "num_generation_tokens", 0)
            finished_at = float(getattr(iteration_stats, "iteration_timestamp", now))
            for finished in getattr(iteration_stats, "finished_requests", ()):
                records.append(record_from_finished(finished, finished_at=finished_at,
                                                    model=self.model, pod=self.pod,
                                                    role=self.role))
        snapshot = None
        if scheduler_stats is not None:
            prefix = getattr(scheduler_stats, "prefix_cache_stats", None)
            if prefix is not None:
                self.prefix_queries_total += getattr(prefix, "queries", 0)
                self.prefix_hits_total += getattr(prefix, "hits", 0)
            idle = not (getattr(scheduler_stats, "num_running_reqs", 0)
                        or getattr(scheduler_stats, "num_waiting_reqs", 0))
            if now - self.last_snapshot >= self.snapshot_interval or idle != self.last_idle:
                self.last_snapshot, self.last_idle = now, idle
                snapshot = self.snapshot(scheduler_stats, now)
        return snapshot, records

    def snapshot(self, scheduler_stats: Any, now: float) -> EngineSnapshot:
        waiting = (getattr(scheduler_stats, "num_waiting_reqs", 0)
                   + getattr(scheduler_stats, "num_skipped_waiting_reqs", 0))
        return EngineSnapshot(
            time=now, engine=self.engine, model=self.model, up=True,
            kv_cache_usage=float(getattr(scheduler_stats, "kv_cache_usage", 0.0)),
            requests_running=float(getattr(scheduler_stats, "num_running_reqs", 0)),
            requests_waiting=float(waiting), preemptions_total=self.preemptions_total,
            prefix_cache_queries_total=self.prefix_queries_total,
            prefix_cache_hits_total=self.prefix_hits_total,
            prompt_tokens_total=self.prompt_tokens_total,
            generation_tokens_total=self.generation_tokens_total, engine_kind="vllm",
            matched_names=("plugin",))
