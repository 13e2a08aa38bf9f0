"""The in-process vLLM stat logger: vLLM's own per-step stats, handed to our sinks.

vLLM loads it from the entry-point group `vllm.stat_logger_plugins` in its API-server
process and calls `record()` on its output loop after every engine step. `record()` only
converts and enqueues (sinks are bounded and non-blocking), and never raises into vLLM.
The composition root subclasses it to supply the sinks (`llmkpi.vllm_entry`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from vllm.v1.metrics.loggers import StatLoggerBase

from engine_shim.records import RecordSink
from engine_shim.vllm_stats import PluginState

log = logging.getLogger(__name__)
# what vLLM never shows a stat logger (docs/record-contract.md): said once at start
BLIND_SPOTS = ("llmkpi plugin: vLLM does not hand requests aborted by a client disconnect to"
               " stat loggers, so they are missing from the plugin's counts, and its stats carry"
               " no request id or tenant; run the llmkpi sidecar in front to measure those")


def served_model_name(vllm_config: Any) -> str:
    model_config = getattr(vllm_config, "model_config", None)
    name = getattr(model_config, "served_model_name", None) or getattr(model_config, "model", "")
    if isinstance(name, list | tuple):
        name = name[0] if name else ""
    return str(name) or "unknown"


class LlmkpiStatLoggerBase(StatLoggerBase):
    """Turns SchedulerStats / IterationStats into EngineSnapshots and RequestRecords."""

    snapshot_interval = 1.0
    pod = ""
    role = ""

    def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
        self.engine_index = engine_index
        self.state = PluginState(model=served_model_name(vllm_config),
                                 engine=f"engine-{engine_index}", pod=self.pod, role=self.role,
                                 clock=time.time, snapshot_interval=self.snapshot_interval)
        self.sink = self.make_sink(vllm_config)
        self.failures = 0
        self.calls = 0
        self.busy_seconds = 0.0  # time spent inside record(): our cost on vLLM's output loop

    def make_sink(self, vllm_config: Any) -> RecordSink:
        raise NotImplementedError("the composition root supplies the sinks")

    def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
               engine_idx: int = 0) -> None:
        started = time.perf_counter()
        try:
            snapshot, records = self.state.update(scheduler_stats, iteration_stats)
            if snapshot is not None:
                self.sink.record_snapshot(snapshot)
            for record in records:
                self.sink.record(record)
        except Exception:
            self.failures += 1
            if self.failures == 1:
                log.exception("llmkpi stat logger failed; vLLM continues unaffected")
        self.calls += 1
        self.busy_seconds += time.perf_counter() - started

    def log_engine_initialized(self) -> None:
        log.info("llmkpi stat logger attached to engine %d (model %s)", self.engine_index,
                 self.state.model)
        if self.engine_index == 0:
            log.warning(BLIND_SPOTS)
