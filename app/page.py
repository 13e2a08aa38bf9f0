"""The executive view: period and filters in the sidebar, then the north star, the scorecard,
cost per token and serving health. Reads are cached for a minute per period and filter."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from app import cost_section, data, kpi_sections, live, serving_section, verdict
from app.config import PageConfig
from collectors.store import Store
from kpi_mapping import config as kpi_config
from kpi_mapping.periods import KINDS, Period
from kpi_mapping.report import Report
from kpi_mapping.report import history as report_history

TTL = 60


@st.cache_resource
def _store(url: str) -> Store:
    return data.open_store(url)


@st.cache_data(ttl=TTL, show_spinner=False)
def _periods(url: str, kind: str) -> tuple[list[Period], int]:
    return data.periods(kind, data.latest_data(_store(url)))


@st.cache_data(ttl=TTL, show_spinner=False)
def _choices(url: str) -> tuple[list[str], list[str]]:
    return data.choices(_store(url))


@st.cache_data(ttl=TTL, show_spinner="Computing the 19 KPIs…")
def _report(url: str, period: Period, config_path: str | None, throttled: bool) -> Report:
    return data.kpi_report(_store(url), period, _kpi_config(config_path, throttled))


@st.cache_data(ttl=TTL, show_spinner="Allocating the GPU bill…")
def _priced(url: str, period: Period) -> data.Priced | None:
    return data.priced(_store(url), period)


@st.cache_data(ttl=TTL, show_spinner=False)
def _points(url: str, periods: tuple[Period, ...]) -> list[data.CostPoint | None]:
    return data.cost_points(_store(url), periods)


@st.cache_data(ttl=TTL, show_spinner=False)
def _cost(url: str, period: Period, filters: data.Filters, history: int,
          margin_basis: str) -> tuple[data.CostView | None, data.CostPoint | None, Any]:
    """The period's cost view, the previous period's point and the chart's history (earlier
    periods' points come from the store's period cache; a filter sums their groups)."""
    periods = report_history(period, max(history, 2))
    whole = _priced(url, period)
    view = data.cost(whole, filters, margin_basis)
    earlier = _points(url, tuple(periods[:-1]))
    points = [*earlier, None if whole is None else data.point(whole)]
    return view, earlier[-1], data.cost_history(points[-history:], filters)


@st.cache_data(ttl=TTL, show_spinner=False)
def _serving(url: str, period: Period, filters: data.Filters,
             config: PageConfig) -> data.ServingView:
    return data.serving(_store(url), period, filters, config.slos,
                        config.throttled_is_failure)


@st.cache_data(ttl=TTL, show_spinner=False)
def _latest(url: str) -> datetime | None:
    return data.latest_data(_store(url))


def _render_verdict(report: Report, view: data.CostView | None,
                    before: data.CostPoint | None, latest: datetime | None,
                    running: bool) -> None:
    """The first screen: how many KPIs are in each band, what moved, the GPU bill."""
    counts = verdict.band_counts(report)
    with st.container(key="verdict", border=True):
        st.markdown(f"**{report.period.label}** · :red[**{counts['red']} red**] ·"
                    f" :orange[**{counts['amber']} amber**] ·"
                    f" :green[**{counts['green']} green**]"
                    + (f" · {counts['none']} without a band" if counts["none"] else ""))
        moved = verdict.movers(report)
        if moved:
            st.markdown("Biggest movers since the previous period: " + "; ".join(
                f"{m.name} {m.change}"
                + ("" if m.better is None else " (better)" if m.better else " (worse)")
                for m in moved))
        bill = verdict.bill_line(view, before)
        if bill:
            st.markdown(bill)
        st.caption(verdict.as_of_line(latest, running))


def _kpi_config(path: str | None, throttled: bool = False) -> kpi_config.KpiConfig:
    return data.kpi_config_for(path, throttled)


def _sidebar(config: PageConfig) -> tuple[Period, data.Filters]:
    with st.sidebar:
        st.header("llmkpi")
        kind = st.segmented_control("Period", KINDS, default="month", required=True,
                                    key="period_kind")
        periods, default = _periods(config.database, str(kind))
        period = st.selectbox("Which", periods, index=default, key="period",
                              format_func=lambda p: p.label + (
                                  " (running)" if data.running(p) else ""))
        tenants, models = _choices(config.database)
        chosen_tenants = st.multiselect("Tenants", tenants, key="tenants",
                                        placeholder="every tenant")
        chosen_models = st.multiselect("Models", models, key="models",
                                       placeholder="every model")
        st.caption("Filters narrow cost and serving health; KPIs are the whole company's.")
        st.caption(f"store: {config.database}")
    return period, data.Filters(tuple(chosen_tenants), tuple(chosen_models))


def main(config: PageConfig) -> None:
    st.set_page_config(page_title="llmkpi · executive view", page_icon=":material/insights:",
                       layout="wide")
    try:
        _store(config.database)
    except data.StoreError as problem:
        st.error(str(problem))
        return
    try:
        kpis = _kpi_config(config.kpi_config)
    except ValueError as problem:
        st.error(str(problem))
        return
    period, filters = _sidebar(config)
    latest = _latest(config.database)
    running = data.running(period)
    st.title("What serving costs, who spends it, and how the 19 KPIs are doing")
    pending = data.pending_rollup(_store(config.database))
    if pending:
        st.caption(f"{pending:,} requests arrived after the last roll-up and are not in the"
                   " KPIs yet; `llmkpi kpi report` (or restarting `llmkpi app`) adds them.")
    report = _report(config.database, period, config.kpi_config, config.throttled_is_failure)
    view, before, history = _cost(config.database, period, filters, config.history,
                                  kpis.margin_basis)
    _render_verdict(report, view, before, latest, running)
    kpi_sections.render_north_star(report, kpis)
    st.divider()
    kpi_sections.render_scorecard(report, config.history, kpis)
    st.divider()
    cost_section.render(view, history, filters.active())
    st.divider()
    readings = live.read(config.prometheus_url, config.live) if config.prometheus_url \
        else None
    serving_section.render(_serving(config.database, period, filters, config),
                           report.row(serving_section.UPTIME_MAPPING).cto, period.label,
                           readings)
