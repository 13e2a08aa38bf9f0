"""The north star and the 19-row scorecard, drawn from one KPI report."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from kpi_mapping.config import KpiConfig
from kpi_mapping.inputs import SOURCES
from kpi_mapping.report import Report, Row, north_star, show
from kpi_mapping.values import MONTHLY, Value
from specs.kpi import Bands, Range

BADGE = {"green": "green", "amber": "orange", "red": "red"}
TREND = {"rising": "↗ rising", "falling": "↘ falling", "flat": "→ flat"}


def band_badge(band: str | None) -> None:
    if band is None:
        st.badge("no band", color="gray")
    else:
        st.badge(band, color=BADGE[band])  # type: ignore[arg-type]


def why_empty(value: Value) -> str:
    """What a person can do about a missing number, naming the import when one is missing."""
    if value.missing:
        return f"missing input: {value.missing}"
    return value.note or "no value"


def _history_frame(report: Report, series: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"period": report.periods, "value": series}).dropna()


def render_north_star(report: Report, config: KpiConfig) -> None:
    star = north_star(report, config)
    st.subheader(f"North star · {report.period.label}")
    left, right = st.columns(2)
    for column, key, title in (
            (left, "revenue_per_employee", "Revenue per employee"),
            (right, "engineer_productivity_index", "Engineer Productivity Index")):
        side = star[key]
        with column, st.container(key=f"north-star-{key}", border=True):
            series = side["history"]
            before = series[-2] if len(series) > 1 else None
            change = side["value"] - before if side["value"] is not None \
                and before is not None else None
            st.metric(title, show(side["value"], "dollars_per_year"),
                      show(change, "dollars_per_year", signed=True) if change is not None
                      else None,
                      help="annualised, for the chosen period")
            if side["value"] is None:
                st.info(why_empty(Value(None, side["missing"], side["note"])))
            band_badge(side["band"])
            st.caption(f"trend over {len(report.periods)} periods:"
                       f" {TREND.get(side['trend'] or '', 'too few periods to say')}")
            frame = _history_frame(report, side["history"])
            if len(frame) > 1:
                st.vega_lite_chart(*charts.trend(frame, "$ per year", "$,.0f"),
                                   width="stretch")


def _side(title: str, value: Value, change: float | None, unit: str, per: str = "") -> None:
    st.caption(title + (f" ({per})" if per else ""))
    if value.value is None:
        st.markdown(f":gray[{why_empty(value)}]")
        return
    text = f"**{show(value.value, unit)}**{' ' + per if per else ''}"  # type: ignore[arg-type]
    if change is not None:
        text += f" :gray[{show(change, unit, signed=True)} vs previous]"  # type: ignore[arg-type]
    if value.detail.get(MONTHLY):
        text += f" :gray[· monthly figure, {value.detail[MONTHLY]}]"
    st.markdown(text)


def _correlation(row: Row) -> str:
    c = row.correlation
    if c.r is None:
        return f"r: too few periods with both values ({c.periods})"
    return f"r = {c.r:+.2f} at lag {c.lag} over {c.periods} periods"


def _details(row: Row, report: Report) -> None:
    m = row.mapping
    st.markdown(f"**{m.ceo_kpi}** = {m.ceo_formula}")
    st.markdown(f"**{m.cto_metric}** = {m.cto_formula}"
                f" · better: {m.better}")
    imports = [f"{s} ({SOURCES[s][1]})" if s in SOURCES else s for s in m.sources]
    st.caption("inputs: " + "; ".join(imports)
               + (f" · product events: {', '.join(m.events)}" if m.events else ""))
    if m.promql:
        st.code(m.promql, language="promql")
    inputs = [{"side": side, "input": k, "value": v}
              for side, value in (("CEO", row.ceo), ("CTO", row.cto))
              for k, v in value.detail.items()]
    if inputs:
        st.dataframe(pd.DataFrame(inputs).astype({"value": "string"}), hide_index=True)
    st.dataframe(pd.DataFrame({  # in the row's units, as the row shows them
        "period": report.periods,
        f"CEO: {m.ceo_kpi}": [show(v, m.ceo_unit) for v in row.ceo_history],
        f"CTO: {m.cto_metric}": [show(v, m.cto_unit) for v in row.cto_history]}),
        hide_index=True)
    lags = [f"lag {lag}: {'-' if r is None else f'{r:+.2f}'} (n={n})"
            for lag, (r, n) in row.correlation.by_lag.items()]
    st.caption("correlation of the CTO metric with the CEO KPI periods later — "
               + ", ".join(lags))


def _range(r: Range, unit: str) -> str:
    if r.lo is not None and r.hi is not None:
        return f"{show(r.lo, unit)} to {show(r.hi, unit)}"  # type: ignore[arg-type]
    if r.lo is not None:
        return f"≥ {show(r.lo, unit)}"  # type: ignore[arg-type]
    if r.hi is not None:
        return f"< {show(r.hi, unit)}"  # type: ignore[arg-type]
    return "any"


def band_thresholds(bands: Bands | None, unit: str) -> str | None:
    """The row's band rule as a person reads it: "green ≥ 80.0 % · amber ≥ 65.0 %"."""
    if bands is None:
        return None
    return f"green {_range(bands.green, unit)} · amber {_range(bands.amber, unit)}"


def render_scorecard(report: Report, history: int, config: KpiConfig | None = None
                     ) -> None:
    st.subheader(f"Scorecard · the 19 mappings · {report.period.label}")
    st.caption("CEO KPI beside the CTO metric that drives it; the band judges the CTO metric;"
               " sparklines show the last periods; r is the strongest correlation at a lag"
               " of 0-3 periods.")
    shown = report.periods[-history:]
    for row in report.rows:
        m = row.mapping
        with st.container(key=f"scorecard-row-{m.id}", border=True):
            number, ceo, cto, band, spark = st.columns([0.4, 3, 3, 1.2, 2.4])
            number.markdown(f"**{m.id}**")
            with ceo:
                _side(m.ceo_kpi, row.ceo, row.ceo_change, m.ceo_unit)
            with cto:
                _side(m.cto_metric, row.cto, row.cto_change, m.cto_unit,
                      "per quarter" if "per quarter" in m.cto_formula else "")
            with band:
                band_badge(row.band)
                rule = band_thresholds((config or KpiConfig()).bands_for(m), m.cto_unit)
                if rule:
                    st.caption(rule)
            with spark:
                values = row.cto_history[-history:]
                if sum(v is not None for v in values) > 1:
                    st.vega_lite_chart(*charts.sparkline(shown, values, row.band),
                                       width="stretch")
                    st.caption(f"CTO metric, {shown[0]} to {shown[-1]}")
                else:
                    st.caption("no history yet")
                st.caption(_correlation(row))
            with st.expander(f"{m.id} · formula, inputs and data"):
                _details(row, report)
