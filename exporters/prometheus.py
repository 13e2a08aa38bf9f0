"""Prometheus sink: request records and engine snapshots into a registry served as OpenMetrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from engine_shim.records import TENANT_REFUSED, EngineSnapshot, RequestRecord
from exporters import web_config
from exporters.cardinality import TopKLabel
from exporters.gap_histogram import GapHistogram
from exporters.web_config import WebConfig
from specs import catalog
from specs.catalog import MetricSpec

log = logging.getLogger(__name__)

SinkStats = Callable[[], Mapping[str, tuple[int, int, int, int]]]


def build_metric(spec: MetricSpec, registry: CollectorRegistry) -> Counter | Gauge | Histogram:
    """One prometheus_client metric from its catalogue entry."""
    if spec.type == "histogram":
        assert spec.buckets is not None
        return Histogram(spec.name, spec.help, spec.labels, registry=registry,
                         buckets=spec.buckets.bounds)
    if spec.type == "counter":
        return Counter(spec.name.removesuffix("_total"), spec.help, spec.labels,
                       registry=registry)
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


class PrometheusSink:
    """Observes each finished request into histograms and counters, bounded per label.

    Runs on a sink worker thread (see engine_shim.dispatch), never on the request path.
    """

    name = "prometheus"

    def __init__(self, registry: CollectorRegistry, *, max_tenants: int = 20,
                 max_features: int = 10, max_models: int = 10) -> None:
        self.registry = registry
        self._metrics: dict[str, Any] = {
            spec.name: GapHistogram(spec, registry) if spec is catalog.INTER_TOKEN_LATENCY
            else build_metric(spec, registry)
            for spec in catalog.REQUEST_METRICS + catalog.ENGINE_METRICS}
        self._overflow = build_metric(catalog.LABEL_OVERFLOW, registry)
        self._refused = build_metric(catalog.TENANT_HEADER_REFUSED, registry)
        # (metric, labels) -> child: prometheus_client's labels() validates and locks on
        # every call, most of a record's cost (series are never removed: see _bounds)
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        # a value once admitted keeps its series for the process lifetime (counters must
        # never lose counts: sum(llmkpi_requests_total) is every request); later values
        # are `other` from their first request
        self._bounds = {
            "tenant": TopKLabel(max_tenants, displace=False),
            "feature": TopKLabel(max_features, displace=False),
            "model": TopKLabel(max_models, displace=False),
        }
        self._engine_counters: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._record(record)

    def _record(self, record: RequestRecord) -> None:
        labels = (self._bounded("model", record.model), self._bounded("tenant", record.tenant),
                  self._bounded("feature", record.feature))
        if record.role == "prefill":  # the prefill pod's work, not a client's request
            self._count(catalog.REMOTE_PREFILLS, (*labels, record.outcome), 1, None)
            self._observe(catalog.REMOTE_PREFILL_TIME, labels, [record.e2e_latency], None)
            if record.prompt_tokens:
                self._count(catalog.REMOTE_PREFILL_TOKENS, labels, record.prompt_tokens, None)
            return
        exemplar = {"trace_id": record.trace_id} if record.trace_id else None
        self._count(catalog.REQUESTS, (*labels, record.outcome, str(record.http_status)), 1,
                    exemplar)
        self._observe(catalog.E2E_REQUEST_LATENCY, (*labels, record.outcome),
                      [record.e2e_latency], exemplar)
        ttft = record.time_to_first_token
        if ttft is not None:
            self._observe(catalog.TIME_TO_FIRST_TOKEN, labels, [ttft], exemplar)
        if record.inter_token_gaps:  # ~one gap per token: counted at once
            negative = self._child(catalog.INTER_TOKEN_LATENCY, labels).observe_many(
                record.inter_token_gaps)
            if negative:
                log.warning("dropped %d negative %s observations", negative,
                            catalog.INTER_TOKEN_LATENCY.name)
        if record.queue_time is not None:
            self._observe(catalog.REQUEST_QUEUE_TIME, labels, [record.queue_time], None)
        if record.prefill_time is not None:
            self._observe(catalog.REQUEST_PREFILL_TIME, labels, [record.prefill_time], None)
        if record.extra and (TENANT_REFUSED, "1") in record.extra:
            self._refused.inc()  # type: ignore[union-attr]
        for spec, value in ((catalog.PROMPT_TOKENS, record.prompt_tokens),
                            (catalog.GENERATION_TOKENS, record.output_tokens),
                            (catalog.CACHED_PROMPT_TOKENS, record.cached_prompt_tokens)):
            if value:
                self._count(spec, labels, value, None)

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        with self._lock:
            self._record_snapshot(snapshot)

    def _record_snapshot(self, snap: EngineSnapshot) -> None:
        labels = (snap.engine, snap.model)
        self._set(catalog.ENGINE_UP, labels, 1.0 if snap.up else 0.0)
        if not snap.up:
            return
        self._set(catalog.ENGINE_INFO, (*labels, snap.role, snap.engine_kind), 1.0)
        self._set(catalog.ENGINE_DP_ENGINES, labels, float(snap.engines))
        for spec, value in ((catalog.ENGINE_KV_CACHE_USAGE, snap.kv_cache_usage),
                            (catalog.ENGINE_KV_CACHE_USAGE_MAX, snap.kv_cache_usage_max),
                            (catalog.ENGINE_REQUESTS_RUNNING, snap.requests_running),
                            (catalog.ENGINE_REQUESTS_WAITING, snap.requests_waiting),
                            (catalog.ENGINE_REQUESTS_DEFERRED, snap.requests_waiting_deferred)):
            if value is not None:
                self._set(spec, labels, value)
        for spec, total in ((catalog.ENGINE_PREEMPTIONS, snap.preemptions_total),
                            (catalog.ENGINE_PREFIX_CACHE_QUERIES, snap.prefix_cache_queries_total),
                            (catalog.ENGINE_PREFIX_CACHE_HITS, snap.prefix_cache_hits_total),
                            (catalog.ENGINE_KV_TRANSFER_SECONDS, snap.kv_transfer_seconds_total),
                            (catalog.ENGINE_KV_TRANSFERS, snap.kv_transfers_total),
                            (catalog.ENGINE_KV_TRANSFER_BYTES, snap.kv_transfer_bytes_total),
                            (catalog.ENGINE_KV_TRANSFER_FAILURES, snap.kv_transfer_failures_total),
                            (catalog.ENGINE_KV_EXPIRED, snap.kv_expired_total)):
            if total is not None:
                self._mirror_counter(spec, labels, total)
        for source, total in (("local_compute", snap.prompt_tokens_computed_total),
                              ("local_cache_hit", snap.prompt_tokens_cache_hit_total),
                              ("external_kv_transfer", snap.prompt_tokens_transferred_total)):
            if total is not None:
                self._mirror_counter(catalog.ENGINE_PROMPT_TOKENS_BY_SOURCE, (*labels, source),
                                     total)

    def close(self) -> None:
        """Nothing buffered: the registry is read on each scrape."""

    def _bounded(self, label: str, value: str) -> str:
        bounded = self._bounds[label].label(value)
        if bounded != value:
            self._overflow.labels(label).inc()  # type: ignore[union-attr]
        return bounded

    def _child(self, spec: MetricSpec, labels: tuple[str, ...]) -> Any:
        key = (spec.name, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metrics[spec.name].labels(*labels)
        return child

    def _observe(self, spec: MetricSpec, labels: tuple[str, ...], values: Iterable[float],
                 exemplar: dict[str, str] | None) -> None:
        child = self._child(spec, labels)
        for value in values:
            if value >= 0:
                child.observe(value, exemplar)
            else:
                log.warning("dropped negative %s observation %r", spec.name, value)

    def _count(self, spec: MetricSpec, labels: tuple[str, ...], amount: float,
               exemplar: dict[str, str] | None) -> None:
        self._child(spec, labels).inc(amount, exemplar)

    def _set(self, spec: MetricSpec, labels: tuple[str, ...], value: float) -> None:
        self._child(spec, labels).set(value)

    def _mirror_counter(self, spec: MetricSpec, labels: tuple[str, ...], total: float) -> None:
        """Follow an engine's cumulative counter; an engine restart (total drops) counts anew."""
        key = (spec.name, *labels)
        previous = self._engine_counters.get(key)
        self._engine_counters[key] = total
        delta = total if previous is None or total < previous else total - previous
        if delta > 0:
            self._child(spec, labels).inc(delta)
        else:
            self._child(spec, labels)



def catalog_family(spec: MetricSpec, labels: Iterable[str] = (), value: float | None = None
            ) -> CounterMetricFamily | GaugeMetricFamily:
    """A custom-collector family named and described by its catalogue entry."""
    if spec.type == "counter":
        return CounterMetricFamily(spec.name.removesuffix("_total"), spec.help,
                                   labels=list(labels) or None, value=value)
    return GaugeMetricFamily(spec.name, spec.help, labels=list(labels) or None, value=value)


class LabelledCollector(Collector):
    """Catalogue metrics sharing one label, read live as {label value: (one per metric)}."""

    def __init__(self, specs: Sequence[MetricSpec],
                 read: Callable[[], Mapping[str, Sequence[float]]]) -> None:
        assert all(spec.labels == specs[0].labels for spec in specs)
        assert len(specs[0].labels) == 1
        self._specs, self._read = tuple(specs), read

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        families = [catalog_family(spec, spec.labels) for spec in self._specs]
        for key, values in sorted(self._read().items()):
            for family, value in zip(families, values, strict=True):
                family.add_metric([key], value)
        return families


class LabelledPairCollector(LabelledCollector):
    """Two catalogue metrics sharing one label, read live as {label value: (first, second)}."""

    def __init__(self, first: MetricSpec, second: MetricSpec,
                 read: Callable[[], Mapping[str, tuple[float, float]]]) -> None:
        super().__init__((first, second), read)


PluginCost = Callable[[], Mapping[str, tuple[int, float]]]
JournalStats = Callable[[], Mapping[str, tuple[float, float, float, float]]]


class OutboxCollector(Collector):
    """Exports the event outbox's state, read from the SQLite file at scrape time."""

    def __init__(self, stats: Callable[[], Any]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats()
        return [catalog_family(catalog.EVENTS_PENDING, value=stats.pending),
                catalog_family(catalog.EVENTS_QUARANTINED, value=stats.quarantined),
                catalog_family(catalog.EVENTS_DROPPED, value=stats.dropped),
                catalog_family(catalog.EVENTS_SENT, value=stats.sent),
                catalog_family(catalog.EVENTS_SEND_FAILURES, value=stats.send_failures)]


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "127.0.0.1",
                  web: WebConfig | None = None) -> Any:
    """Serve the registry on its own port; OpenMetrics (with exemplars) when the scraper
    asks; TLS and basic auth as the web config file says (exporters/web_config.py)."""
    return web_config.serve_metrics(registry, port, addr, web)


class PrometheusExporter:
    """The registry, the request sink and the metrics server, built together.

    Callers outside `exporters` use this so that only this package imports prometheus_client.
    """

    def __init__(self, *, max_tenants: int = 20, max_features: int = 10) -> None:
        self.registry = CollectorRegistry()
        self.sink = PrometheusSink(self.registry, max_tenants=max_tenants,
                                   max_features=max_features)

    def watch_sinks(self, stats: SinkStats) -> None:
        """Dropped, failed and quarantined records and refused writes per sink, read live
        from the dispatcher."""
        self.registry.register(LabelledCollector(
            (catalog.SINK_DROPPED, catalog.SINK_FAILED, catalog.SINK_WRITE_FAILURES,
             catalog.SINK_QUARANTINED), stats))

    def watch_plugin(self, cost: PluginCost) -> None:
        """The vLLM plugin's own cost per engine: calls and seconds inside record()."""
        self.registry.register(LabelledPairCollector(
            catalog.PLUGIN_RECORD_CALLS, catalog.PLUGIN_RECORD_SECONDS, cost))

    def watch_journal(self, stats: JournalStats) -> None:
        """The journal consumers' progress (engine_shim/tailer.py), read at scrape time."""
        self.registry.register(LabelledCollector(
            (catalog.JOURNAL_RECORDS, catalog.JOURNAL_FAILURES, catalog.JOURNAL_QUARANTINED,
             catalog.JOURNAL_LAG), stats))

    def watch_outbox(self, stats: Callable[[], Any]) -> None:
        self.registry.register(OutboxCollector(stats))

    def serve(self, port: int, addr: str = "127.0.0.1", web: WebConfig | None = None) -> Any:
        return serve_metrics(self.registry, port, addr, web)
