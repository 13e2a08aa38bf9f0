"""The alerting config (a versioned YAML file): SLOs per model, serving, cost and job names.

Parsed once into frozen dataclasses; a mistake stops with the file, line and key.

    version: 1
    sidecar_job: llmkpi-sidecar         # the Prometheus job scraping the sidecars
    runbook_url: https://example.com/llmkpi/runbooks.md
    slos:
      - name: ttft                      # a label value: [a-z0-9_]
        sli: ttft                       # availability, ttft or itl
        threshold_seconds: 0.5          # ttft/itl: a bucket bound of the catalogue
        objective: 0.99
        period: 30d                     # d, h or m; the burn-rate windows scale with it
        models:                         # per model: objective, period, threshold_seconds
          llama-3-70b: {objective: 0.95, threshold_seconds: 1.0}
    serving: {kv_cache_usage_max: 0.9, error_ratio_max: 0.05, e2e_tail_ratio_max: 10,
              kv_transfer_failure_ratio_max: 0.01, stage_saturation_max: 1.0}
    cost:
      budget_per_million_tokens: 0.5    # dollars, blended; per model below
      models: {llama-3-70b: 2.0}
      tenant_spike_factor: 3            # x the tenant's own 7-day mean token rate
      tenant_spike_min_tokens_per_second: 10
    kpi: {out_of_band_for: 15m, stale_after: 1h}
    availability:
      throttled_is_failure: false       # a 429 counts against availability (KPI 7 too)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from specs.configfile import ConfigFile, Node
from specs.slo import DAY, SLIS, SliName, Slo, Target

__all__ = ["SLIS", "AlertConfig", "Cost", "Kpi", "Serving", "Slo", "Target", "load"]

VERSION = 1
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Serving:
    kv_cache_usage_max: float = 0.9
    error_ratio_max: float = 0.05
    e2e_tail_ratio_max: float = 10.0
    kv_transfer_failure_ratio_max: float = 0.01  # P/D: failed / attempted KV transfers
    stage_saturation_max: float = 1.0  # the gateway's dispatch set point per stage


@dataclass(frozen=True)
class Cost:
    budget_per_million_tokens: float = 0.5
    models: dict[str, float] = field(default_factory=dict)
    tenant_spike_factor: float = 3.0
    tenant_spike_min_tokens_per_second: float = 10.0


@dataclass(frozen=True)
class Kpi:
    out_of_band_for_seconds: float = 900.0
    stale_after_seconds: float = 3_600.0


DEFAULT_RUNBOOK_URL = "https://github.com/llmkpi/llmkpi/blob/main/docs/runbooks.md"


@dataclass(frozen=True)
class AlertConfig:
    slos: tuple[Slo, ...]
    sidecar_job: str = "llmkpi-sidecar"
    # Alerts link to their runbook section: an absolute URL (Alertmanager, PagerDuty and
    # Slack show it far from this repository), docs/runbooks.md where the team reads it
    runbook_url: str = DEFAULT_RUNBOOK_URL
    serving: Serving = Serving()
    cost: Cost = Cost()
    kpi: Kpi = Kpi()
    # Whether a 429 (the engine or gateway shedding load) counts against availability. The
    # SLO rules, KPI 7 and the page all take it from here (docs/kpis.md, "Availability").
    throttled_is_failure: bool = False


def _threshold(read: ConfigFile, node: Node, key: str, sli: str) -> float:
    spec = SLIS[sli].histogram
    if spec is None or spec.buckets is None:
        raise read.fail(node, key, "an availability SLO has no latency threshold")
    value = read.number(node, key, low=0.0, open_low=True)
    bounds = spec.buckets.bounds
    if value not in bounds:
        near = sorted(bounds, key=lambda b: abs(b - value))[:2]
        raise read.fail(node, key, f"{value:g} s is not a bucket bound of {spec.name}, so"
                        f" Prometheus cannot count requests under it exactly; nearest:"
                        f" {', '.join(f'{b:g}' for b in sorted(near))}")
    return value


def _period(read: ConfigFile, node: Node, key: str) -> float:
    seconds = read.duration(node, key)
    # The shortest window is 5 minutes of a 30-day period: under 12 h it gets below 5 s,
    # which is too few scrapes for rate().
    if seconds < 12 * 3_600:
        raise read.fail(node, key, f"{node.value} is shorter than 12h; its shortest burn-rate"
                        " window would be under 5 s, too short for rate()")
    return seconds


TARGET_KEYS = ("objective", "period", "threshold_seconds")


def _target(read: ConfigFile, node: Node, fields: dict[str, Node], key: str, sli: str,
            base: Target | None) -> Target:
    """The SLO's own target (base None: objective required) or a model's over the base."""
    if base is None and "objective" not in fields:
        raise read.fail(node, f"{key}.objective", "missing: e.g. 0.99")
    target = base or Target(objective=0.0, period_seconds=30 * DAY)
    if "objective" in fields:
        target = replace(target, objective=read.number(fields["objective"], f"{key}.objective",
                                                       low=0.0, high=1.0, open_low=True))
    if "period" in fields:
        target = replace(target, period_seconds=_period(read, fields["period"],
                                                        f"{key}.period"))
    if "threshold_seconds" in fields:
        target = replace(target, threshold_seconds=_threshold(
            read, fields["threshold_seconds"], f"{key}.threshold_seconds", sli))
    if sli != "availability" and target.threshold_seconds is None:
        raise read.fail(node, f"{key}.threshold_seconds", f"missing: a {sli} SLO needs one")
    return target


def _slo(read: ConfigFile, node: Node, key: str) -> Slo:
    fields = read.fields(node, key, ("name", "sli", *TARGET_KEYS, "models"))
    for required in ("name", "sli"):
        if required not in fields:
            raise read.fail(node, f"{key}.{required}", "missing")
    name = read.text(fields["name"], f"{key}.name", NAME_RE, "a-z, 0-9, _")
    sli = read.text(fields["sli"], f"{key}.sli")
    if sli not in SLIS:
        raise read.fail(fields["sli"], f"{key}.sli", f"{sli!r}: expected one of"
                        f" {', '.join(SLIS)}")
    default = _target(read, node, fields, key, sli, None)
    models: dict[str, Target] = {}
    if "models" in fields:
        for model, entry in read.mapping(fields["models"], f"{key}.models").items():
            where = f"{key}.models.{model}"
            models[model] = _target(read, entry, read.fields(entry, where, TARGET_KEYS), where,
                                    sli, default)
    return Slo(name, cast(SliName, sli), default, models)


def _numbers(read: ConfigFile, node: Node, key: str, cls: type[Serving] | type[Cost]) -> Any:
    """`serving` or `cost`: positive numbers, and for cost a number per model."""
    values: dict[str, Any] = {}
    for name, value in read.fields(node, key, tuple(cls.__dataclass_fields__)).items():
        if name == "models":
            values[name] = {m: read.number(v, f"{key}.models.{m}", low=0.0, open_low=True)
                            for m, v in read.mapping(value, f"{key}.models").items()}
        else:
            values[name] = read.number(value, f"{key}.{name}", low=0.0, open_low=True)
    return cls(**values)


KPI_KEYS = {"out_of_band_for": "out_of_band_for_seconds", "stale_after": "stale_after_seconds"}


def _kpi(read: ConfigFile, node: Node) -> Kpi:
    fields = read.fields(node, "kpi", tuple(KPI_KEYS))
    return Kpi(**{KPI_KEYS[k]: read.duration(v, f"kpi.{k}") for k, v in fields.items()})


def load(path: Path) -> AlertConfig:
    read = ConfigFile(path, "the SLO config", VERSION, "`version: 1` and `slos`")
    read.refuse_unknown(("sidecar_job", "runbook_url", "slos", "serving", "cost", "kpi",
                         "availability"))
    doc = read.top
    if "slos" not in doc or not isinstance(doc["slos"].value, list) or not doc["slos"].value:
        raise read.fail(doc.get("slos", read.root), "slos", "expected a list of SLOs")
    slos = tuple(_slo(read, item, f"slos[{i}]") for i, item in enumerate(doc["slos"].value))
    seen: set[str] = set()
    for i, slo in enumerate(slos):
        if slo.name in seen:
            raise read.fail(doc["slos"].value[i], f"slos[{i}].name", f"{slo.name!r} twice")
        seen.add(slo.name)
    extra: dict[str, Any] = {}
    for key in ("sidecar_job", "runbook_url"):
        if key in doc:
            extra[key] = read.text(doc[key], key)
    if "runbook_url" in extra and not re.match(r"https?://[^/\s]+", extra["runbook_url"]):
        raise read.fail(doc["runbook_url"], "runbook_url",
                        f"{extra['runbook_url']!r} is not an absolute http(s) URL: alerts"
                        " are read far from this repository")
    for key, cls in (("serving", Serving), ("cost", Cost)):
        if key in doc:
            extra[key] = _numbers(read, doc[key], key, cls)
    if "kpi" in doc:
        extra["kpi"] = _kpi(read, doc["kpi"])
    if "availability" in doc:
        fields = read.fields(doc["availability"], "availability", ("throttled_is_failure",))
        if "throttled_is_failure" in fields:
            extra["throttled_is_failure"] = read.flag(fields["throttled_is_failure"],
                                                      "availability.throttled_is_failure")
    return AlertConfig(slos=slos, **extra)
