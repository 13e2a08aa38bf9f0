"""A histogram that takes a request's token gaps at once: what the ITL metric needs.

A streamed request has one gap per token, so prometheus_client's `Histogram.observe` ran ~30
times per request (a lock and a bucket search each): most of the telemetry's CPU per
request. This collector counts a whole list of gaps under one lock, bisecting each into the
catalogue's bounds, and exposes the same `_bucket`, `_count` and `_sum` series a
prometheus_client histogram does (no exemplars: ITL carries none).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from specs.catalog import MetricSpec


class _Series:
    __slots__ = ("counts", "total")

    def __init__(self, width: int) -> None:
        self.counts = [0] * width
        self.total = 0.0


class GapHistogramChild:
    """One label set's view, as `Histogram.labels(...)` gives."""

    def __init__(self, parent: GapHistogram, key: tuple[str, ...]) -> None:
        self._parent, self._key = parent, key

    def observe_many(self, values: Sequence[float]) -> int:
        """Count every value at or above 0; returns how many negative ones were left out."""
        return self._parent.observe_many(self._key, values)


class GapHistogram(Collector):
    """A labelled histogram on the catalogue's bounds, fed many values per call."""

    def __init__(self, spec: MetricSpec, registry: CollectorRegistry | None = None) -> None:
        assert spec.type == "histogram" and spec.buckets is not None
        self.spec = spec
        self.bounds = tuple(float(b) for b in spec.buckets.bounds)
        self._series: dict[tuple[str, ...], _Series] = {}
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> GapHistogramChild:
        if len(values) != len(self.spec.labels):
            raise ValueError(f"{self.spec.name}: {len(self.spec.labels)} label values needed")
        with self._lock:
            self._series.setdefault(values, _Series(len(self.bounds) + 1))
        return GapHistogramChild(self, values)

    def observe_many(self, key: tuple[str, ...], values: Sequence[float]) -> int:
        bounds, negative = self.bounds, 0
        with self._lock:
            series = self._series.setdefault(key, _Series(len(bounds) + 1))
            counts, where = series.counts, bisect.bisect_left
            if values and min(values) < 0:
                kept = [v for v in values if v >= 0]
                negative, values = len(values) - len(kept), kept
            for value in values:
                counts[where(bounds, value)] += 1  # le: bound >= value
            series.total += sum(values)
        return negative

    def remove(self, *values: str) -> None:
        with self._lock:
            self._series.pop(values, None)

    def collect(self) -> Iterable[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.spec.name, self.spec.help,
                                       labels=list(self.spec.labels))
        with self._lock:
            snapshot = [(k, list(s.counts), s.total) for k, s in self._series.items()]
        for key, counts, total in sorted(snapshot):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((_le(bound), cumulative))
            family.add_metric(list(key), buckets, sum_value=total)
        return [family]


def _le(bound: float) -> str:
    """The `le` label as prometheus_client writes it for bounds under 10^6 (a unit test
    compares the exposition with a prometheus_client Histogram's)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))
