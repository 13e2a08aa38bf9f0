"""The KPI report and cost figures as Prometheus gauges (`llmkpi kpi serve`).

The composition root computes a `KpiSnapshot` (plain data) on an interval and hands it to
`KpiCollector.update`; a scrape reads the latest snapshot, so a slow or failed refresh never
blocks a scrape and a mapping that lost its value disappears instead of going stale.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from exporters.prometheus import catalog_family, serve_metrics
from exporters.web_config import WebConfig
from specs import catalog

BAND_CODES = {"green": 0.0, "amber": 1.0, "red": 2.0}


@dataclass(frozen=True)
class KpiSample:
    mapping: int
    key: str
    ceo: float | None
    cto: float | None
    band: str | None


@dataclass(frozen=True)
class KpiSnapshot:
    period: str
    kind: str
    kpis: list[KpiSample]
    revenue_per_employee: float | None = None
    engineer_productivity: float | None = None
    cost_per_million: list[tuple[str, str, str, float]] = field(default_factory=list)
    gpu_bill: float | None = None
    idle_cost: float | None = None
    tenant_cost: dict[str, float] = field(default_factory=dict)
    feature_cost: dict[str, float] = field(default_factory=dict)
    tenant_margin: dict[str, float] = field(default_factory=dict)
    refreshed: float = 0.0


class KpiCollector(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._snapshot: KpiSnapshot | None = None
        self._failures = 0
        registry.register(self)

    def update(self, snapshot: KpiSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def failed(self) -> None:
        with self._lock:
            self._failures += 1

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        with self._lock:
            snap, failures = self._snapshot, self._failures
        yield catalog_family(catalog.KPI_REFRESH_FAILURES, value=failures)
        if snap is None:
            return
        ceo = catalog_family(catalog.KPI_CEO_VALUE, catalog.KPI_LABELS)
        cto = catalog_family(catalog.KPI_CTO_VALUE, catalog.KPI_LABELS)
        band = catalog_family(catalog.KPI_BAND, catalog.KPI_LABELS)
        for kpi in snap.kpis:
            labels = [str(kpi.mapping), kpi.key]
            if kpi.ceo is not None:
                ceo.add_metric(labels, kpi.ceo)
            if kpi.cto is not None:
                cto.add_metric(labels, kpi.cto)
            if kpi.band in BAND_CODES:
                band.add_metric(labels, BAND_CODES[kpi.band])
        yield from (ceo, cto, band)
        period = catalog_family(catalog.KPI_PERIOD, catalog.KPI_PERIOD.labels)
        period.add_metric([snap.period, snap.kind], 1.0)
        yield period
        for spec, value in ((catalog.REVENUE_PER_EMPLOYEE, snap.revenue_per_employee),
                            (catalog.ENGINEER_PRODUCTIVITY, snap.engineer_productivity),
                            (catalog.GPU_BILL, snap.gpu_bill),
                            (catalog.GPU_IDLE_COST, snap.idle_cost),
                            (catalog.KPI_REFRESHED, snap.refreshed)):
            if value is not None:
                yield catalog_family(spec, value=value)
        spec_m = catalog.COST_PER_MILLION_TOKENS
        per_m = catalog_family(spec_m, spec_m.labels)
        for model, kind, basis, value in snap.cost_per_million:
            per_m.add_metric([model, kind, basis], value)
        yield per_m
        for spec, values in ((catalog.TENANT_GPU_COST, snap.tenant_cost),
                             (catalog.FEATURE_GPU_COST, snap.feature_cost),
                             (catalog.TENANT_GROSS_MARGIN, snap.tenant_margin)):
            family = catalog_family(spec, spec.labels)
            for tenant, value in sorted(values.items()):
                family.add_metric([tenant], value)
            yield family


class KpiExporter:
    """A registry holding only the KPI gauges, and its HTTP server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.collector = KpiCollector(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1", web: WebConfig | None = None
              ) -> object:
        return serve_metrics(self.registry, port, addr, web)
