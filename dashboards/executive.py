"""Executive KPIs: the north star, then the 19 mappings, CEO KPI beside its CTO metric.

Values are `llmkpi kpi serve`'s gauges for its latest full period. The CTO metric is coloured
by its bands (the mapping's defaults, or a KPI config's given to the build); the band tile
shows the band `kpi serve` computed, which always follows the KPI config it runs with.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingOf

from grafanalib import core as g

from dashboards import panels as p
from kpi_mapping.mappings import MAPPINGS, NORTH_STAR, Bands, Mapping, Unit, by_id
from specs import catalog as c

UID = "llmkpi-executive"
# Grafana unit ids; a unit Grafana lacks is a suffix.
UNITS: dict[Unit, str] = {
    "ratio": "percentunit", "hours": "suffix: h", "dollars": "currencyUSD",
    "days": "suffix: days",
    "weeks": "suffix: weeks", "months": "suffix: months", "days_per_week": "suffix: days/wk",
    "seconds": "s", "score": "none", "multiple": "suffix: ×", "dollars_per_year": "currencyUSD",
}


def _gauge(spec: c.MetricSpec, mapping: Mapping) -> str:
    return f'{spec.name}{{mapping="{mapping.id}"}}'


def _kpi_row(lay: p.Layout, mapping: Mapping, bands: Bands | None) -> None:
    lay.add(p.stat(f"{mapping.id}. {mapping.ceo_kpi}", [p.Query(
        _gauge(c.KPI_CEO_VALUE, mapping), "CEO")], UNITS[mapping.ceo_unit],
        f"CEO KPI: {mapping.ceo_formula}."), w=10, h=4)
    lay.add(p.stat(mapping.cto_metric, [p.Query(_gauge(c.KPI_CTO_VALUE, mapping), "CTO")],
                   UNITS[mapping.cto_unit], f"CTO metric: {mapping.cto_formula}."
                   f" Better {mapping.better}.",
                   thresholds=p.band_thresholds(bands) if bands else None), w=10, h=4)
    lay.add(p.stat("Band", [p.Query(_gauge(c.KPI_BAND, mapping), "band")], "none",
                   c.KPI_BAND.help, mappings=p.BAND_CODE_MAPPINGS, graph=False), w=4, h=4)


def build(bands: MappingOf[int, Bands | None] | None = None) -> g.Dashboard:
    """`bands` overrides the mappings' default bands by id (from a KPI config)."""
    chosen = {m.id: (bands or {}).get(m.id, m.bands) for m in MAPPINGS}
    star = by_id(NORTH_STAR)
    lay = p.Layout()
    lay.add(p.row("North star"))
    lay.add(p.stat(star.ceo_kpi, [p.Query(c.REVENUE_PER_EMPLOYEE.name, "per year")],
                   UNITS[star.ceo_unit], c.REVENUE_PER_EMPLOYEE.help), w=12, h=6)
    epi_bands = chosen[NORTH_STAR]
    lay.add(p.stat(star.cto_metric, [p.Query(c.ENGINEER_PRODUCTIVITY.name, "per year")],
                   UNITS[star.cto_unit], c.ENGINEER_PRODUCTIVITY.help,
                   thresholds=p.band_thresholds(epi_bands) if epi_bands else None), w=12, h=6)
    lay.add(p.timeseries("North star over time", [
        p.Query(c.REVENUE_PER_EMPLOYEE.name, "revenue per employee"),
        p.Query(c.ENGINEER_PRODUCTIVITY.name, "engineer productivity index")],
        "currencyUSD"), w=24)
    lay.add(p.row("The 19 mappings: CEO KPI, CTO metric, band"))
    for mapping in MAPPINGS:
        _kpi_row(lay, mapping, chosen[mapping.id])
    lay.add(p.row("Freshness"))
    lay.add(p.stat("Period shown", [p.Query(c.KPI_PERIOD.name, "{{kind}} {{period}}")], "none",
                   c.KPI_PERIOD.help, graph=False, text="name"), w=8, h=4)
    lay.add(p.stat("Since the last refresh", [p.Query(f"time() - {c.KPI_REFRESHED.name}")],
                   "s", c.KPI_REFRESHED.help, graph=False), w=8, h=4)
    lay.add(p.stat("Refresh failures", [p.Query(c.KPI_REFRESH_FAILURES.name)], "none",
                   c.KPI_REFRESH_FAILURES.help, graph=False,
                   thresholds=[{"color": "green", "value": None},
                               {"color": "red", "value": 1}]), w=8, h=4)
    return p.dashboard(UID, "llmkpi · Executive KPIs", "The north star and the 19 CEO-KPI →"
                       " CTO-metric mappings with their bands.", ["kpi", "executive"], lay,
                       [p.datasource_variable()], time_from="now-30d")
