"""The model of the KPI config: bands a value is judged by, CEO targets, and the few choices
a company makes differently. kpi_mapping/config.py parses a file into it (its schema);
kpi_mapping/mappings.py declares each mapping's default bands with the same types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

MARGIN_BASES = ("fully_loaded", "busy_time")


@dataclass(frozen=True)
class Range:
    """lo ≤ value < hi; a missing end is open."""

    lo: float | None = None
    hi: float | None = None

    def holds(self, value: float) -> bool:
        return (self.lo is None or value >= self.lo) and (self.hi is None or value < self.hi)


@dataclass(frozen=True)
class Bands:
    green: Range
    amber: Range

    def of(self, value: float) -> str:
        return "green" if self.green.holds(value) else "amber" if self.amber.holds(value) \
            else "red"


class HasBands(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def bands(self) -> Bands | None: ...


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

    def bands_for(self, mapping: HasBands) -> Bands | None:
        return self.bands.get(mapping.id, mapping.bands)
