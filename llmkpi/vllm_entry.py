"""Entry point of the vLLM stat-logger plugin (`vllm.stat_logger_plugins` = llmkpi).

vLLM builds one logger per engine; they share one set of sinks per process: a Prometheus
exporter on LLMKPI_PLUGIN_METRICS_PORT and, when LLMKPI_RECORDS_OUT is set, a JSON-lines log.
With LLMKPI_PLUGIN_JOURNAL each finished request is appended to a journal on vLLM's output
loop (one buffered write) and every sink reads it at its own position, as on the sidecar:
a killed vLLM loses no ledger row or event of a request it finished. Without it the sinks
are fed directly and what waits in their queues at a kill is lost.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from engine_shim.records import RecordSink
from engine_shim.vllm_plugin import LlmkpiStatLoggerBase
from exporters.prometheus import PrometheusExporter
from llmkpi.serve import plugin_sink
from llmkpi.settings import PluginSettings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_shared: RecordSink | None = None
_loggers: list[LlmkpiStatLoggerBase] = []


def plugin_cost() -> dict[str, tuple[int, float]]:
    return {f"engine-{lg.engine_index}": (lg.calls, lg.busy_seconds) for lg in list(_loggers)}


def shared_sink(settings: PluginSettings) -> RecordSink:
    """The process's one fan-out (or journal); the metrics port is opened once, by the first
    engine."""
    global _shared  # noqa: PLW0603 - one exporter per process, whatever vLLM instantiates
    with _lock:
        if _shared is not None:
            return _shared
        exporter = PrometheusExporter()
        _shared = plugin_sink(settings, exporter)
        exporter.watch_plugin(plugin_cost)
        if settings.metrics_port:
            try:
                exporter.serve(settings.metrics_port, settings.host, settings.web_config)
                log.info("llmkpi plugin metrics on http://%s:%d/metrics", settings.host,
                         settings.metrics_port)
            except OSError as exc:  # e.g. a second API-server process on the same host
                log.error("llmkpi plugin: metrics port %d unavailable (%s); records still"
                          " go to the other sinks", settings.metrics_port, exc)
        return _shared


class LlmkpiStatLogger(LlmkpiStatLoggerBase):
    """What vLLM instantiates."""

    def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
        self.settings = PluginSettings.from_env()
        self.snapshot_interval = self.settings.snapshot_seconds
        self.pod = self.settings.sinks.pod
        self.role = self.settings.role
        super().__init__(vllm_config, engine_index)
        _loggers.append(self)

    def make_sink(self, vllm_config: Any) -> RecordSink:
        return shared_sink(self.settings)
