"""PromQL for panels, built from catalogue specs so no metric name is retyped.

Each selector carries the dashboard's variables for the labels its metric has: `model` and
`tenant` from the catalogue, `pod` from the scrape (deploy/prometheus relabels the pod name).
"""

from __future__ import annotations

from specs import catalog
from specs.catalog import MetricSpec

RATE = "$__rate_interval"
VARIABLE_LABELS = ("model", "tenant", "feature")
# Metrics scraped from the sidecar or plugin of a pod (the KPI gauges come from one process).
POD_SCOPED = frozenset(s.name for s in catalog.REQUEST_METRICS + catalog.ENGINE_METRICS)


def matchers(spec: MetricSpec, variables: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{label}=~"${label}"' for label in VARIABLE_LABELS
             if label in variables and label in spec.labels]
    if "pod" in variables and spec.name in POD_SCOPED:
        parts.append('pod=~"$pod"')
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def series(spec: MetricSpec, variables: tuple[str, ...], extra: str = "",
           suffix: str = "") -> str:
    return f"{spec.name}{suffix}{matchers(spec, variables, extra)}"


def rate_sum(spec: MetricSpec, variables: tuple[str, ...], by: tuple[str, ...] = (),
             extra: str = "", window: str = RATE, suffix: str = "") -> str:
    grouping = f" by ({', '.join(by)})" if by else ""
    return f"sum{grouping} (rate({series(spec, variables, extra, suffix)}[{window}]))"


def quantile(spec: MetricSpec, q: float, variables: tuple[str, ...],
             by: tuple[str, ...] = ()) -> str:
    assert spec.type == "histogram", spec.name
    return (f"histogram_quantile({q:g}, "
            f"{rate_sum(spec, variables, by=('le', *by), suffix='_bucket')})")


def ratio(numerator: str, denominator: str) -> str:
    """numerator / denominator, no data (not NaN or +Inf) while the denominator is zero."""
    return f"{numerator} / ({denominator} > 0)"
