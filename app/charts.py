"""Altair charts for the page: sparklines, trends, cost over time, bars and margins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import pandas as pd

# Altair builds charts through chained methods typed loosely; a chart is what it returns.
Chart = Any
BAND_COLOURS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828"}
NEUTRAL = "#5c6bc0"


def sparkline(periods: Sequence[str], values: Sequence[float | None],
               band: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The last periods of one series, small; gaps where a period has no value. A plain
    Vega-Lite spec (data, spec): 19 of them through Altair's schema validation cost ~1 s."""
    frame = pd.DataFrame({"period": list(periods), "value": list(values)})
    colour = BAND_COLOURS.get(band or "", NEUTRAL)
    encoding = {"x": {"field": "period", "type": "ordinal", "axis": None,
                      "sort": list(periods)},
                "y": {"field": "value", "type": "quantitative", "axis": None,
                      "scale": {"zero": False}},
                "tooltip": [{"field": "period"},
                            {"field": "value", "type": "quantitative", "format": ",.3~g"}]}
    spec = {"height": 44, "encoding": encoding, "layer": [
        {"mark": {"type": "line", "color": colour, "strokeWidth": 2}},
        {"mark": {"type": "point", "color": colour, "size": 12, "filled": True}}]}
    return frame, spec


def trend(frame: pd.DataFrame, value_title: str, fmt: str) -> Chart:
    """A line over periods: frame has period, value, and optional band column."""
    return alt.Chart(frame).mark_line(point=True, color=NEUTRAL).encode(
        x=alt.X("period:O", title=None, sort=list(frame["period"])),
        y=alt.Y("value:Q", title=value_title, axis=alt.Axis(format=fmt),
                scale=alt.Scale(zero=False)),
        tooltip=["period", alt.Tooltip("value:Q", format=fmt)]).properties(height=180)


def cost_per_token(frame: pd.DataFrame, kind: str) -> Chart:
    """$ per million tokens of one kind (blended, input or output) over periods, a line per
    model (one kind per chart: a legend of dash styles is not drawn by Streamlit's theme)."""
    mine = frame[frame["kind"] == kind]
    return alt.Chart(mine).mark_line(point=True).encode(
        x=alt.X("period:O", title=None, sort=sorted(set(mine["period"]))),
        y=alt.Y("dollars_per_million:Q", title=f"$/M {kind} tokens, loaded",
                axis=alt.Axis(format="$,.3~f")),
        color=alt.Color("model:N", title="model", legend=alt.Legend(labelLimit=320)),
        tooltip=["period", "model", "kind",
                 alt.Tooltip("dollars_per_million:Q", format="$,.4f")]).properties(height=260)


def bars(frame: pd.DataFrame, value: str, title: str, fmt: str = "$,.2f") -> Chart:
    """Horizontal bars, largest first: frame has `name` and the value column."""
    return alt.Chart(frame).mark_bar(color=NEUTRAL).encode(
        x=alt.X(f"{value}:Q", title=title, axis=alt.Axis(format=fmt)),
        y=alt.Y("name:N", title=None, sort="-x", axis=alt.Axis(labelOverlap=False,
                                                               labelLimit=240)),
        tooltip=["name", alt.Tooltip(f"{value}:Q", format=fmt)]).properties(
        height=max(120, 28 * len(frame)))


def margins(frame: pd.DataFrame) -> Chart:
    """Gross margin per tenant, coloured red below zero."""
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("margin:Q", title="gross margin after GPU cost", axis=alt.Axis(format="%")),
        y=alt.Y("tenant:N", title=None, sort="-x", axis=alt.Axis(labelOverlap=False)),
        color=alt.condition(alt.datum.margin < 0, alt.value(BAND_COLOURS["red"]),
                            alt.value(BAND_COLOURS["green"])),
        tooltip=["tenant", alt.Tooltip("revenue:Q", format="$,.2f"),
                 alt.Tooltip("gpu_cost:Q", format="$,.2f"),
                 alt.Tooltip("margin:Q", format=".1%")]).properties(
        height=max(120, 28 * len(frame)))


def daily(frame: pd.DataFrame, column: str, title: str, objective: float | None) -> Chart:
    """A daily p95 line with the SLO threshold as a rule, when there is one."""
    line = alt.Chart(frame).mark_line(point=True, color=NEUTRAL).encode(
        x=alt.X("day:T", title=None),
        y=alt.Y(f"{column}:Q", title=title),
        tooltip=[alt.Tooltip("day:T"), alt.Tooltip(f"{column}:Q", format=".3f")])
    if objective is None:
        return line.properties(height=200)
    rule = alt.Chart(pd.DataFrame({"y": [objective]})).mark_rule(
        color=BAND_COLOURS["red"], strokeDash=[4, 4]).encode(y="y:Q")
    return (line + rule).properties(height=200)
