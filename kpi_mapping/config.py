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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kpi_mapping.mappings import MAPPINGS, Bands, Mapping, Range

VERSION = 1
SETTINGS = ("slo_ttft_seconds", "correlation_periods", "engineering_teams",
            "replacement_cost_share", "margin_basis")
MARGIN_BASES = ("fully_loaded", "busy_time")


@dataclass(frozen=True)
class KpiConfig:
    bands: dict[int, Bands] = field(default_factory=dict)
    targets: dict[int, float] = field(default_factory=dict)
    slo_ttft_seconds: float = 2.0
    correlation_periods: int = 8
    engineering_teams: tuple[str, ...] | None = None
    replacement_cost_share: float = 0.5
    margin_basis: str = "fully_loaded"  # or busy_time: the margin per tenant shown first
    # set from the SLO config by the command (one switch for KPI 7, the page and the rules)
    throttled_is_failure: bool = False

    def bands_for(self, mapping: Mapping) -> Bands | None:
        return self.bands.get(mapping.id, mapping.bands)


class _Node:
    """A YAML value with the line it starts on."""

    def __init__(self, value: Any, line: int) -> None:
        self.value, self.line = value, line


def _walk(node: yaml.Node, loader: yaml.SafeLoader) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        return _Node({loader.construct_object(k): _walk(v, loader)
                      for k, v in node.value}, line)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_walk(item, loader) for item in node.value], line)
    return _Node(loader.construct_object(node), line)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: _Node, key: str, problem: str) -> ValueError:
        return ValueError(f"{self.path}:{node.line}: {key}: {problem}")

    def mapping(self, node: _Node, key: str) -> dict[Any, _Node]:
        if not isinstance(node.value, dict):
            raise self.fail(node, key, "expected a mapping of keys to values")
        return node.value

    def number(self, node: _Node, key: str, minimum: float | None = None) -> float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, key, f"expected a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(node, key, f"{value} is below {minimum}")
        return float(value)

    def band(self, node: _Node, key: str) -> Range:
        fields = self.mapping(node, key)
        for name in fields:
            if name not in ("min", "max"):
                raise self.fail(fields[name], f"{key}.{name}", "unknown key: use min and max")
        lo = self.number(fields["min"], f"{key}.min") if "min" in fields else None
        hi = self.number(fields["max"], f"{key}.max") if "max" in fields else None
        if lo is None and hi is None:
            raise self.fail(node, key, "give min, max or both")
        if lo is not None and hi is not None and lo >= hi:
            raise self.fail(node, key, f"min {lo} is not below max {hi}")
        return Range(lo, hi)


def _mapping_named(name: Any) -> Mapping | None:
    for mapping in MAPPINGS:
        if name in (mapping.id, mapping.key) or str(name) == str(mapping.id):
            return mapping
    return None


def load(path: Path) -> KpiConfig:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the KPI config: {exc.strerror}") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    read = _Reader(path)
    if root is None:
        raise ValueError(f"{path}: the KPI config is empty; it needs at least `version: 1`")
    doc = read.mapping(_walk(root, yaml.SafeLoader("")), "(top level)")
    top = _Node(doc, 1)
    if "version" not in doc:
        raise read.fail(top, "version", f"missing: this llmkpi reads version {VERSION}")
    if doc["version"].value != VERSION:
        raise read.fail(doc["version"], "version",
                        f"{doc['version'].value!r} is not a version this llmkpi reads"
                        f" ({VERSION})")
    settings: dict[str, Any] = {}
    bands: dict[int, Bands] = {}
    targets: dict[int, float] = {}
    for key, node in doc.items():
        if key == "version":
            continue
        if key == "mappings":
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
                        unknown = set(parts) - {"green", "amber"}
                        if unknown or len(parts) != 2:
                            raise read.fail(value, where, "give green and amber, each with"
                                            " min and/or max")
                        bands[mapping.id] = Bands(read.band(parts["green"], f"{where}.green"),
                                                  read.band(parts["amber"], f"{where}.amber"))
                    else:
                        raise read.fail(value, where, "unknown key: use bands or target")
        elif key in ("slo_ttft_seconds", "replacement_cost_share"):
            settings[key] = read.number(node, key, minimum=0)
        elif key == "correlation_periods":
            if not isinstance(node.value, int) or isinstance(node.value, bool) \
                    or not 4 <= node.value <= 60:
                raise read.fail(node, key, f"expected a whole number from 4 to 60, got"
                                           f" {node.value!r}")
            settings[key] = node.value
        elif key == "margin_basis":
            if node.value not in MARGIN_BASES:
                raise read.fail(node, key, f"expected {' or '.join(MARGIN_BASES)}, got"
                                           f" {node.value!r}")
            settings[key] = node.value
        elif key == "engineering_teams":
            if not isinstance(node.value, list) or not all(
                    isinstance(item.value, str) for item in node.value):
                raise read.fail(node, key, "expected a list of team names")
            settings[key] = tuple(item.value for item in node.value)
        else:
            raise read.fail(node, str(key), "unknown key: expected version, mappings, "
                            + ", ".join(SETTINGS))
    return KpiConfig(bands=bands, targets=targets, **settings)
