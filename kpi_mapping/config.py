"""The KPI config (a versioned YAML file): bands, CEO targets and the few choices a company
makes differently. An invalid file stops with the file, line and key that is wrong.

    version: 1
    mappings:
      13:                       # a mapping's id or key (response time here)
        bands: {green: {max: 0.3}, amber: {max: 1.0}}
      revenue_per_employee:
        target: 400000          # the CEO KPI's target, shown beside its value
    slo_ttft_seconds: 2.0       # the scalability index's "within SLO"
    correlation_periods: 8      # how many periods the correlation looks back
    engineering_teams: [inference, platform]   # team attrition (KPI 14); default: tech teams
    replacement_cost_share: 0.5 # of a leaver's yearly loaded cost (KPI 18)
    margin_basis: fully_loaded  # gross margin per tenant: fully_loaded (idle shared) or busy_time
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kpi_mapping.mappings import MAPPINGS, Mapping
from specs.configfile import ConfigFile, Node
from specs.kpi import MARGIN_BASES, Bands, KpiConfig, Range

__all__ = ["KpiConfig", "load"]

VERSION = 1
SETTINGS = ("slo_ttft_seconds", "correlation_periods", "engineering_teams",
            "replacement_cost_share", "margin_basis")


def _band(read: ConfigFile, node: Node, key: str) -> Range:
    fields = read.fields(node, key, ("min", "max"))
    lo = read.number(fields["min"], f"{key}.min") if "min" in fields else None
    hi = read.number(fields["max"], f"{key}.max") if "max" in fields else None
    if lo is None and hi is None:
        raise read.fail(node, key, "give min, max or both")
    if lo is not None and hi is not None and lo >= hi:
        raise read.fail(node, key, f"min {lo} is not below max {hi}")
    return Range(lo, hi)


def _mapping_named(name: Any) -> Mapping | None:
    for mapping in MAPPINGS:
        if name in (mapping.id, mapping.key) or str(name) == str(mapping.id):
            return mapping
    return None


def _mappings(read: ConfigFile, node: Node, bands: dict[int, Bands],
              targets: dict[int, float]) -> None:
    for name, entry in read.mapping(node, "mappings").items():
        mapping = _mapping_named(name)
        if mapping is None:
            raise read.fail(entry, f"mappings.{name}", "no such mapping: use an id"
                            " 1-19 or a key from `llmkpi kpi mappings`")
        for field_name, value in read.mapping(entry, f"mappings.{name}").items():
            where = f"mappings.{name}.{field_name}"
            if field_name == "target":
                targets[mapping.id] = read.number(value, where)
            elif field_name == "bands":
                parts = read.mapping(value, where)
                if set(parts) != {"green", "amber"}:
                    raise read.fail(value, where, "give green and amber, each with"
                                    " min and/or max")
                bands[mapping.id] = Bands(_band(read, parts["green"], f"{where}.green"),
                                          _band(read, parts["amber"], f"{where}.amber"))
            else:
                raise read.fail(value, where, "unknown key: use bands or target")


def load(path: Path) -> KpiConfig:
    read = ConfigFile(path, "the KPI config", VERSION, "at least `version: 1`")
    read.refuse_unknown(("mappings", *SETTINGS))
    settings: dict[str, Any] = {}
    bands: dict[int, Bands] = {}
    targets: dict[int, float] = {}
    for key, node in read.top.items():
        if key == "mappings":
            _mappings(read, node, bands, targets)
        elif key in ("slo_ttft_seconds", "replacement_cost_share"):
            settings[key] = read.number(node, key, low=0.0)
        elif key == "correlation_periods":
            settings[key] = read.whole(node, key, 4, 60)
        elif key == "margin_basis":
            settings[key] = read.choice(node, key, MARGIN_BASES)
        elif key == "engineering_teams":
            settings[key] = read.texts(node, key)
    return KpiConfig(bands=bands, targets=targets, **settings)
