"""The page's charts as plain Vega-Lite: sparklines, trends, cost over time, bars and margins.

Each function returns (data, spec) for `st.vega_lite_chart(data, spec)`. Written as specs
rather than through Altair: Altair validates every chart against the Vega-Lite schema as it
is drawn, and the page's ~30 charts cost ~0.5 s of every rerun that way (period switch and
filter targets are 1 s). Specs use only documented Vega-Lite fields; the page test draws
them and the browser test renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

Spec = dict[str, Any]
Chart = tuple[pd.DataFrame, Spec]
BAND_COLOURS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828"}
NEUTRAL = "#5c6bc0"


def _tooltip(field: str, kind: str = "nominal", fmt: str | None = None,
             title: str | None = None) -> Spec:
    out: Spec = {"field": field, "type": kind}
    if fmt:
        out["format"] = fmt
    if title:
        out["title"] = title
    return out


def sparkline(periods: Sequence[str], values: Sequence[float | None],
              band: str | None = None) -> Chart:
    """The last periods of one series, small; gaps where a period has no value."""
    frame = pd.DataFrame({"period": list(periods), "value": list(values)})
    colour = BAND_COLOURS.get(band or "", NEUTRAL)
    encoding = {"x": {"field": "period", "type": "ordinal", "axis": None,
                      "sort": list(periods)},
                "y": {"field": "value", "type": "quantitative", "axis": None,
                      "scale": {"zero": False}},
                "tooltip": [_tooltip("period"), _tooltip("value", "quantitative", ",.3~g")]}
    spec = {"height": 44, "encoding": encoding, "layer": [
        {"mark": {"type": "line", "color": colour, "strokeWidth": 2}},
        {"mark": {"type": "point", "color": colour, "size": 12, "filled": True}}]}
    return frame, spec


def trend(frame: pd.DataFrame, value_title: str, fmt: str) -> Chart:
    """A line over periods: frame has period and value."""
    return frame, {
        "height": 180, "mark": {"type": "line", "point": True, "color": NEUTRAL},
        "encoding": {
            "x": {"field": "period", "type": "ordinal", "title": None,
                  "sort": list(frame["period"])},
            "y": {"field": "value", "type": "quantitative", "title": value_title,
                  "axis": {"format": fmt}, "scale": {"zero": False}},
            "tooltip": [_tooltip("period"), _tooltip("value", "quantitative", fmt)]}}


def cost_per_token(frame: pd.DataFrame, kind: str) -> Chart:
    """$ per million tokens of one kind (blended, input or output) over periods, a line per
    model (one kind per chart: a legend of dash styles is not drawn by Streamlit's theme)."""
    mine = frame[frame["kind"] == kind].reset_index(drop=True)
    return mine, {
        "height": 260, "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "period", "type": "ordinal", "title": None,
                  "sort": sorted(set(mine["period"]))},
            "y": {"field": "dollars_per_million", "type": "quantitative",
                  "title": f"$/M {kind} tokens, loaded", "axis": {"format": "$,.3~f"}},
            "color": {"field": "model", "type": "nominal", "title": "model",
                      "legend": {"labelLimit": 320}},
            "tooltip": [_tooltip("period"), _tooltip("model"), _tooltip("kind"),
                        _tooltip("dollars_per_million", "quantitative", "$,.4f",
                                 "$ per million")]}}


def _horizontal(frame: pd.DataFrame) -> int:
    return max(120, 28 * len(frame))


def bars(frame: pd.DataFrame, value: str, title: str, fmt: str = "$,.2f") -> Chart:
    """Horizontal bars, largest first: frame has `name` and the value column."""
    mine = frame[["name", value]].reset_index(drop=True)
    return mine, {
        "height": _horizontal(mine), "mark": {"type": "bar", "color": NEUTRAL},
        "encoding": {
            "x": {"field": value, "type": "quantitative", "title": title,
                  "axis": {"format": fmt}},
            "y": {"field": "name", "type": "nominal", "title": None, "sort": "-x",
                  "axis": {"labelOverlap": False, "labelLimit": 240}},
            "tooltip": [_tooltip("name"), _tooltip(value, "quantitative", fmt, title)]}}


def margins(frame: pd.DataFrame) -> Chart:
    """Gross margin per tenant, red below zero."""
    mine = frame[["tenant", "revenue", "gpu_cost", "margin"]].reset_index(drop=True)
    return mine, {
        "height": _horizontal(mine), "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "margin", "type": "quantitative",
                  "title": "gross margin after GPU cost", "axis": {"format": "%"}},
            "y": {"field": "tenant", "type": "nominal", "title": None, "sort": "-x",
                  "axis": {"labelOverlap": False}},
            "color": {"condition": {"test": "datum.margin < 0",
                                    "value": BAND_COLOURS["red"]},
                      "value": BAND_COLOURS["green"]},
            "tooltip": [_tooltip("tenant"), _tooltip("revenue", "quantitative", "$,.2f"),
                        _tooltip("gpu_cost", "quantitative", "$,.2f", "GPU cost"),
                        _tooltip("margin", "quantitative", ".1%")]}}


def daily(frame: pd.DataFrame, column: str, title: str, objective: float | None) -> Chart:
    """A daily p95 line with the SLO threshold as a dashed rule, when there is one."""
    mine = frame[["day", column]].reset_index(drop=True)
    line: Spec = {
        "mark": {"type": "line", "point": True, "color": NEUTRAL},
        "encoding": {
            "x": {"field": "day", "type": "temporal", "title": None},
            "y": {"field": column, "type": "quantitative", "title": title},
            "tooltip": [_tooltip("day", "temporal"),
                        _tooltip(column, "quantitative", ".3f", title)]}}
    if objective is None:
        return mine, {"height": 200, **line}
    rule: Spec = {"data": {"values": [{"objective": objective}]},
                  "mark": {"type": "rule", "color": BAND_COLOURS["red"],
                           "strokeDash": [4, 4]},
                  "encoding": {"y": {"field": "objective", "type": "quantitative"}}}
    return mine, {"height": 200, "layer": [line, rule]}
