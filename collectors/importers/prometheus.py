"""Engine series from a Prometheus server's HTTP API (`/api/v1/query_range`) into snapshots.

The caller names, per snapshot field, the metric names to try, newest first (vLLM's own
names, older vLLM names, the sidecar's `llmkpi_engine_*`); the first name with data wins for
each field. Long ranges are read in windows under Prometheus' 11,000-points-per-series limit.
Readings are keyed by (engine, model, pod, time): reading a range again adds only what is new.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlmodel import SQLModel

from collectors.importers.base import location
from collectors.tables import EngineSnapshotRow

Progress = Callable[[str], None]
MAX_POINTS = 10_000
SNAPSHOT_FIELDS = ("kv_cache_usage", "requests_running", "requests_waiting",
                   "preemptions_total", "prefix_cache_queries_total", "prefix_cache_hits_total")
Key = tuple[str, str, str, float]


class PrometheusError(ValueError):
    """Prometheus could not be reached or refused a query; says which and why."""


class PrometheusImporter:
    kind = "prometheus"

    def __init__(self, series: Mapping[str, Sequence[str]], *, start: datetime,
                 end: datetime, step: float = 60.0, timeout: float = 30.0,
                 progress: Progress | None = None) -> None:
        if end <= start:
            raise ValueError(f"--end {end.isoformat()} is not after --start {start.isoformat()}")
        if step <= 0:
            raise ValueError(f"--step {step:g} must be above 0 seconds")
        unknown = set(series) - set(SNAPSHOT_FIELDS)
        if unknown:
            raise ValueError(f"not snapshot fields: {', '.join(sorted(unknown))}")
        self.series, self.start, self.end = series, start, end
        self.step, self.timeout, self.progress = step, timeout, progress

    def fingerprint(self, path: Path) -> None:
        """A server's data grows: always read it; known readings are skipped on write."""

    def load(self, path: Path) -> list[SQLModel]:
        base = location(path)
        readings: dict[Key, dict[str, Any]] = {}
        for field, names in self.series.items():
            for name in names:
                found = self._read(base, name, field, readings)
                if self.progress is not None:
                    self.progress(f"{field}: {name} -> {found} points")
                if found:
                    break
        if not readings:
            raise PrometheusError(
                f"{base}: no engine series between {self.start.isoformat()} and"
                f" {self.end.isoformat()} (is Prometheus scraping vLLM or the llmkpi sidecar?)")
        return [EngineSnapshotRow(engine=engine, model=model, pod=pod, up=True,
                                  taken=datetime.fromtimestamp(t, tz=UTC), **values)
                for (engine, model, pod, t), values in sorted(readings.items())]

    def _read(self, base: str, name: str, field: str,
              readings: dict[Key, dict[str, Any]]) -> int:
        query = f"max by (instance, pod, engine, model_name, model) ({name})"
        window = timedelta(seconds=self.step * MAX_POINTS)
        found = 0
        start = self.start
        while start < self.end:
            end = min(start + window, self.end)
            for item in self._query(base, query, start, end):
                labels = item.get("metric", {})
                engine = "/".join(x for x in (labels.get("instance"), labels.get("engine")) if x)
                model = labels.get("model_name") or labels.get("model") or "unknown"
                pod = labels.get("pod", "")
                for stamp, raw in item.get("values", []):
                    value = float(raw)
                    if math.isnan(value):
                        continue
                    reading = readings.setdefault((engine or "unknown", model, pod,
                                                   float(stamp)), {})
                    reading[field] = value
                    found += 1
            start = end
        return found

    def _query(self, base: str, query: str, start: datetime,
               end: datetime) -> list[dict[str, Any]]:
        url = base.rstrip("/") + "/api/v1/query_range"
        params = {"query": query, "start": f"{start.timestamp():.3f}",
                  "end": f"{end.timestamp():.3f}", "step": f"{self.step:g}"}
        try:
            resp = requests.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise PrometheusError(f"{base}: cannot reach Prometheus: {exc}") from None
        try:
            body = resp.json()
        except ValueError:
            raise PrometheusError(f"{url}: HTTP {resp.status_code}, not a Prometheus API"
                                  " answer") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body.get('errorType', 'error')}:"
                                  f" {body.get('error', resp.status_code)} (query {query})")
        result = body.get("data", {}).get("result", [])
        return list(result) if isinstance(result, list) else []
