"""Serving health: TTFT and ITL p95, uptime and SLO budget remaining, from the ledger and,
when a Prometheus URL is configured, live."""

from __future__ import annotations

import streamlit as st

from app import charts
from app.data import LEDGER_IMPORT, ServingView
from app.live import LiveValue
from kpi_mapping.report import percent
from kpi_mapping.values import Value

UPTIME_MAPPING = 7


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms" if value < 1 else f"{value:.2f} s"


def live_text(item: LiveValue) -> str:
    """A live number as the tile shows it; a budget is clamped at 0 and says how many times
    over it is (remaining = 1 − spent, so −1.5 is 2.5× the budget spent)."""
    if item.value is None:
        return "-"
    if item.query.unit == "seconds":
        return _seconds(item.value)
    if item.query.unit == "budget" and item.value < 0:
        return f"0 % ({1 - item.value:,.1f}× spent)"
    return percent(item.value, 2)


def render(view: ServingView, uptime: Value, period: str,
           live: list[LiveValue] | None) -> None:
    st.subheader("Serving health")
    if view.requests == 0:
        st.info(f"No requests in the ledger for {period} and this selection:"
                f" {LEDGER_IMPORT} records each one.", icon=":material/speed:")
    else:
        with st.container(key="serving-summary"):
            ttft, itl, up, req = st.columns(4)
            ttft.metric("TTFT p95", _seconds(view.ttft_p95), help="time to first token")
            itl.metric("ITL p95", _seconds(view.itl_p95),
                       help="per token gap, on the live ITL histogram's bins (the ITL SLO's"
                            " own observations)")
            up.metric("Uptime", percent(uptime.value, 3) if uptime.value is not None else "-",
                      help="the fleet's, from engine readings (KPI 7); filters do not apply")
            req.metric("Requests", f"{view.requests:,}",
                       f"{view.failed:,} failed" if view.failed else None,
                       delta_color="inverse" if view.failed else "off")
        with st.container(key="slo-budgets"):
            for status in view.slos:
                t = status.slo.default
                label = (f"{status.slo.name}: objective {percent(t.objective, 2)}"
                         + (f", threshold {_seconds(t.threshold_seconds)}"
                            if t.threshold_seconds is not None else ""))
                if status.budget_remaining is None:
                    st.caption(f"{label} — no events in {period}")
                    continue
                remaining = status.budget_remaining
                window = f"{status.slo.default.period_seconds / 86400:g}-day window"
                spent = ""
                if status.overspent and status.spent is not None:
                    gone = f" on {status.exhausted_on:%Y-%m-%d %H:00}" \
                        if status.exhausted_on else ""
                    spent = f" (exhausted{gone}, {status.spent:,.1f}× over)"
                st.progress(min(max(remaining, 0.0), 1.0),
                            text=f"{label} · {window} · achieved"
                                 f" {percent(status.achieved or 0.0, 3)} ·"
                                 f" error budget remaining {percent(remaining, 0)}{spent}")
        if len(view.daily) > 1:
            ttft_slo = next((s.slo.default.threshold_seconds for s in view.slos
                             if s.slo.sli == "ttft"), None)
            st.vega_lite_chart(*charts.daily(view.daily, "ttft_p95", "TTFT p95 per day (s)",
                                             ttft_slo), width="stretch")
    if live is not None:
        st.markdown("**Live, from Prometheus**")
        _tiles([item for item in live if item.query.group != "ttft"])
        split = [item for item in live if item.query.group == "ttft"]
        if split:
            with st.container(key="ttft-split"):
                st.markdown("**Where first tokens' time goes** (live, the fleet, last 15 min)")
                _tiles(split)
                st.caption(TTFT_SPLIT)


TTFT_SPLIT = (
    "Mean TTFT = the serving engine's queue (on a P/D decode engine it holds the wait for the"
    " KV cache from the prefill pod) + its prefill (scheduled to first token; on a decode"
    " engine one step) + what lies before the engine: network, gateway, sidecar and, with"
    " P/D, the remote prefill. The engine's two spans need its per-request metrics (vLLM"
    " --enable-per-request-metrics); without them they read \"no series yet\".")


def _tiles(items: list[LiveValue]) -> None:
    columns = st.columns(max(1, len(items)))
    for column, item in zip(columns, items, strict=False):
        column.metric(item.query.label, live_text(item), help=item.query.promql)
        if item.names:
            column.caption(item.names)
        if item.problem:
            column.caption(item.problem)
