"""`llmkpi kpi report`: the 19 mappings for a period — both sides, band, change from the
previous period, and whether the CTO metric has moved with its CEO KPI (correlation over
the last N periods at a lag of 0-3 periods) — and the north star with its trend."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collectors import rollup
from collectors.store import Store
from kpi_mapping import period_cache
from kpi_mapping.config import KpiConfig
from kpi_mapping.inputs import Inputs, load
from kpi_mapping.kpis import Context, both_sides
from kpi_mapping.mappings import MAPPINGS, NORTH_STAR, Mapping, Unit
from kpi_mapping.periods import Period
from kpi_mapping.values import MONTHLY, Value

MAX_LAG = 3
MIN_PAIRS = 4
FLAT = 0.02  # a trend under 2 % of the mean per period is flat


@dataclass(frozen=True)
class Correlation:
    """Pearson r between CTO metric t − lag and CEO KPI t, at the lag with the largest |r|."""

    r: float | None
    lag: int | None
    periods: int
    by_lag: dict[int, tuple[float | None, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    mapping: Mapping
    ceo: Value
    cto: Value
    band: str | None
    ceo_change: float | None
    cto_change: float | None
    target: float | None
    correlation: Correlation
    ceo_history: list[float | None]
    cto_history: list[float | None]


@dataclass(frozen=True)
class Report:
    period: Period
    periods: list[str]  # the history, oldest first, ending with the period
    rows: list[Row]

    def row(self, mapping_id: int) -> Row:
        return next(r for r in self.rows if r.mapping.id == mapping_id)


def history(period: Period, count: int) -> list[Period]:
    out = [period]
    while len(out) < count:
        out.insert(0, out[0].previous())
    return out


def correlation(ceo: list[float | None], cto: list[float | None], last: int) -> Correlation:
    by_lag: dict[int, tuple[float | None, int]] = {}
    for lag in range(MAX_LAG + 1):
        pairs = [(cto[t - lag], ceo[t]) for t in range(len(ceo) - last, len(ceo))
                 if t - lag >= 0 and ceo[t] is not None and cto[t - lag] is not None]
        r = None
        if len(pairs) >= MIN_PAIRS:
            x, y = np.array(pairs, dtype="float64").T
            if x.std() > 0 and y.std() > 0:
                r = float(np.corrcoef(x, y)[0, 1])
        by_lag[lag] = (r, len(pairs))
    known = [(abs(r), lag) for lag, (r, _) in by_lag.items() if r is not None]
    if not known:
        return Correlation(None, None, max(n for _, n in by_lag.values()), by_lag)
    _, best = max(known)
    return Correlation(by_lag[best][0], best, by_lag[best][1], by_lag)


def band_of(mapping: Mapping, value: Value, config: KpiConfig) -> str | None:
    bands = config.bands_for(mapping)
    if value.value is not None and bands is not None:
        return bands.of(value.value)
    return value.band


def _change(now: Value, before: Value) -> float | None:
    if now.value is None or before.value is None:
        return None
    month = now.detail.get(MONTHLY)
    if month is not None and month == before.detail.get(MONTHLY):
        return None  # the same month's figure: a week beside a week of it is not a change
    return now.value - before.value


def build(store: Store, period: Period, config: KpiConfig,
          progress: Callable[[str], None] | None = None) -> Report:
    """Roll up new ledger rows, then `read`."""
    rollup.refresh(store, progress)
    return read(store, period, config)


def read(store: Store, period: Period, config: KpiConfig, keep: bool = True) -> Report:
    """The period and its history from what is rolled up already: closed periods from the
    store's period cache while it is valid (kpi_mapping/period_cache.py), the rest computed
    from inputs loaded once, and kept for next time unless `keep` is off."""
    span = history(period, config.correlation_periods + MAX_LAG)
    cached = period_cache.lookup(store, span, config)
    missing = [p for p in span if p.start not in cached]
    computed: dict[Period, period_cache.Pairs] = {}
    if missing:  # each period reads its own and the previous period's windowed inputs
        inputs = load(store, missing[0].previous().start, missing[-1].end)
        computed = {p: pairs(inputs, p, config) for p in missing}
        if keep:
            period_cache.keep(store, computed, config)
    return assemble([cached[p.start] if p.start in cached else computed[p] for p in span],
                    span, config)


def pairs(inputs: Inputs, period: Period, config: KpiConfig) -> period_cache.Pairs:
    """The 19 (CEO, CTO) values of one period."""
    return {m.id: both_sides(m.id, Context(inputs, period, config)) for m in MAPPINGS}


def compute(inputs: Inputs, span: list[Period], config: KpiConfig) -> Report:
    return assemble([pairs(inputs, p, config) for p in span], span, config)


def assemble(values: list[period_cache.Pairs], span: list[Period], config: KpiConfig
             ) -> Report:
    """Rows (value, band, change, correlation, history) from each period's pairs."""
    rows = []
    for mapping in MAPPINGS:
        ceo = [v[mapping.id][0].value for v in values]
        cto = [v[mapping.id][1].value for v in values]
        now, before = values[-1][mapping.id], values[-2][mapping.id] if len(values) > 1 \
            else (Value(None), Value(None))
        rows.append(Row(mapping, now[0], now[1], band_of(mapping, now[1], config),
                        _change(now[0], before[0]), _change(now[1], before[1]),
                        config.targets.get(mapping.id),
                        correlation(ceo, cto, min(config.correlation_periods, len(span))),
                        ceo, cto))
    return Report(span[-1], [p.label for p in span], rows)


def trend(series: list[float | None]) -> str | None:
    """rising / falling / flat: the least-squares slope per period against the mean."""
    points = [(i, v) for i, v in enumerate(series) if v is not None]
    if len(points) < 3:
        return None
    x, y = np.array(points, dtype="float64").T
    slope = float(np.polyfit(x, y, 1)[0])
    scale = abs(float(y.mean())) or 1.0
    return "flat" if abs(slope) < FLAT * scale else "rising" if slope > 0 else "falling"


def north_star(report: Report, config: KpiConfig) -> dict[str, Any]:
    row = report.row(NORTH_STAR)
    bands = config.bands_for(row.mapping)

    def side(value: Value, series: list[float | None]) -> dict[str, Any]:
        return {"value": value.value, "missing": value.missing, "note": value.note,
                "band": bands.of(value.value) if bands and value.value is not None else None,
                "trend": trend(series), "history": series}

    return {"revenue_per_employee": side(row.ceo, row.ceo_history),
            "engineer_productivity_index": side(row.cto, row.cto_history)}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _value_doc(value: Value) -> dict[str, Any]:
    return {"value": _clean(value.value), "missing": value.missing, "note": value.note,
            "detail": {k: _clean(v) for k, v in value.detail.items()}}


def to_dict(report: Report, config: KpiConfig) -> dict[str, Any]:
    return {
        "period": report.period.label, "kind": report.period.kind,
        "start": report.period.start.isoformat(), "end": report.period.end.isoformat(),
        "history": report.periods, "north_star": north_star(report, config),
        "mappings": [{
            "id": r.mapping.id, "key": r.mapping.key,
            "ceo_kpi": r.mapping.ceo_kpi, "ceo_unit": r.mapping.ceo_unit,
            "ceo": _value_doc(r.ceo), "ceo_change": _clean(r.ceo_change),
            "ceo_target": r.target,
            "cto_metric": r.mapping.cto_metric, "cto_unit": r.mapping.cto_unit,
            "cto": _value_doc(r.cto), "cto_change": _clean(r.cto_change),
            "better": r.mapping.better, "band": r.band,
            "correlation": {"r": r.correlation.r, "lag": r.correlation.lag,
                            "periods": r.correlation.periods,
                            "by_lag": {str(k): {"r": v[0], "periods": v[1]}
                                       for k, v in r.correlation.by_lag.items()}},
            "ceo_history": r.ceo_history, "cto_history": r.cto_history,
        } for r in report.rows]}


def percent(value: float, digits: int = 1, signed: bool = False) -> str:
    """The one percent format of every page and report: 12.3 %, +3.6 %."""
    return f"{'+' if signed and value > 0 else ''}{value * 100:,.{digits}f} %"


def show(value: float | None, unit: Unit, signed: bool = False) -> str:
    """A value as a person reads it: 12.3 %, 5.2 h, $12,345, 2.31×."""
    if value is None:
        return "-"
    sign = "+" if signed and value > 0 else ""
    formats: dict[str, Callable[[float], str]] = {
        "ratio": lambda v: f"{sign}{v * 100:.1f}{' pp' if signed else ' %'}",
        "hours": lambda v: f"{sign}{v:,.1f} h", "days": lambda v: f"{sign}{v:,.1f} d",
        "weeks": lambda v: f"{sign}{v:,.1f} wk", "months": lambda v: f"{sign}{v:,.1f} mo",
        "days_per_week": lambda v: f"{sign}{v:.2f} d/wk",
        "seconds": lambda v: f"{sign}{v:.3f} s", "score": lambda v: f"{sign}{v:.0f}",
        "multiple": lambda v: f"{sign}{v:,.2f}×",
        "dollars": lambda v: f"{'-' if v < 0 else sign}${abs(v):,.0f}",
        "dollars_per_year": lambda v: f"{'-' if v < 0 else sign}${abs(v) / 1000:,.0f}K/yr"
        if abs(v) >= 10_000 else f"{'-' if v < 0 else sign}${abs(v):,.0f}/yr",
    }
    return formats[unit](value)


def _cell(value: Value, unit: Unit) -> str:
    if value.missing:
        return f"missing: {value.missing}"
    if value.value is None:
        return f"- ({value.note})"
    return show(value.value, unit)


def format_table(report: Report, config: KpiConfig) -> str:
    star = north_star(report, config)
    lines = [f"KPIs for {report.period.label} ({report.period.kind});"
             f" correlation over {min(config.correlation_periods, len(report.periods))}"
             f" periods, lag 0-{MAX_LAG}", ""]
    for name, key in (("Revenue per employee", "revenue_per_employee"),
                      ("Engineer Productivity Index", "engineer_productivity_index")):
        s = star[key]
        lines.append(f"north star  {name:<28} {show(s['value'], 'dollars_per_year'):>12}"
                     f"  band {s['band'] or '-':<6} trend {s['trend'] or '-'}"
                     + (f"  ({s['missing'] or s['note']})" if s["value"] is None else ""))
    lines += ["", f"{'#':>2} {'CEO KPI':<30} {'value':>12} {'change':>10}  "
              f"{'CTO metric':<34} {'value':>12} {'change':>10} {'band':<6} {'r (lag, n)'}"]
    for r in report.rows:
        m = r.mapping
        corr = (f"{r.correlation.r:+.2f} ({r.correlation.lag}, {r.correlation.periods})"
                if r.correlation.r is not None else f"- (n={r.correlation.periods})")
        ceo, cto = _cell(r.ceo, m.ceo_unit), _cell(r.cto, m.cto_unit)
        lines.append(f"{m.id:>2} {m.ceo_kpi[:30]:<30} {ceo if len(ceo) <= 12 else '':>12}"
                     f" {show(r.ceo_change, m.ceo_unit, True):>10}  {m.cto_metric[:34]:<34}"
                     f" {cto if len(cto) <= 12 else '':>12}"
                     f" {show(r.cto_change, m.cto_unit, True):>10} {r.band or '-':<6} {corr}")
        for side, text in (("CEO", ceo), ("CTO", cto)):
            if len(text) > 12:
                lines.append(f"{'':>3} {side}: {text}")
    return "\n".join(lines)


CSV_COLUMNS = ("id", "key", "ceo_kpi", "ceo_value", "ceo_unit", "ceo_change", "ceo_target",
               "ceo_missing", "ceo_note", "cto_metric", "cto_value", "cto_unit", "cto_change",
               "cto_missing", "cto_note", "band", "correlation", "correlation_lag",
               "correlation_periods")


def format_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in report.rows:
        m = r.mapping
        writer.writerow({
            "id": m.id, "key": m.key, "ceo_kpi": m.ceo_kpi, "ceo_value": _clean(r.ceo.value),
            "ceo_unit": m.ceo_unit, "ceo_change": _clean(r.ceo_change), "ceo_target": r.target,
            "ceo_missing": r.ceo.missing, "ceo_note": r.ceo.note, "cto_metric": m.cto_metric,
            "cto_value": _clean(r.cto.value), "cto_unit": m.cto_unit,
            "cto_change": _clean(r.cto_change), "cto_missing": r.cto.missing,
            "cto_note": r.cto.note, "band": r.band, "correlation": r.correlation.r,
            "correlation_lag": r.correlation.lag,
            "correlation_periods": r.correlation.periods})
    return out.getvalue()
