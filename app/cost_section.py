"""Cost per token over time, idle cost, and where the money went."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import charts
from app.data import GPU_IMPORT, LEDGER_IMPORT, REVENUE_IMPORT, CostView
from kpi_mapping.report import percent


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _summary(view: CostView) -> tuple[float | None, float | None]:
    """The four tiles: bill (so far, projected, while the period runs), idle, $/M, busy."""
    with st.container(key="cost-summary"):
        bill, idle, per_m, util = st.columns(4)
        if view.projected_bill is not None:
            bill.metric("GPU bill so far", _money(view.bill),
                        f"at this rate {_money(view.projected_bill)} for the {view.period.kind}",
                        delta_color="off", delta_arrow="off",
                        help="the period is still running: billed up to the current hour")
        else:
            bill.metric("GPU bill", _money(view.bill), help="the whole fleet for the period")
        idle.metric("Idle cost", _money(view.idle),
                    f"{percent(view.idle / view.bill, 1)} of the bill" if view.bill else None,
                    delta_color="off", delta_arrow="off",
                    help="provisioned GPU time no request used")
        loaded, busy = (view.fleet_per_million["fully_loaded"],
                        view.fleet_per_million["busy_time"])
        per_m.metric("$ per million tokens, fully loaded",
                     f"${loaded:,.4f}" if loaded is not None else "-",
                     f"busy-time ${busy:,.4f}" if busy is not None else None,
                     delta_color="off", delta_arrow="off",
                     help="fully loaded: the GPU bill, idle included, ÷ tokens served (what a"
                          " CFO reads); busy-time: only the GPU time requests used ÷ tokens")
        util.metric("GPU busy", percent(view.utilization, 1)
                    if view.utilization is not None else "-",
                    help="busy GPU-seconds / provisioned GPU-seconds")
    return loaded, busy


def render(view: CostView | None, history: pd.DataFrame, filtered: bool) -> None:
    st.subheader("Cost per token")
    if view is None:
        st.info(f"No GPU inventory in the store, so there is no bill to allocate:"
                f" `{GPU_IMPORT} FILE` (docs/imports.md) fills this section.",
                icon=":material/payments:")
        return
    loaded, busy = _summary(view)
    if loaded and busy and loaded > 2 * busy and view.bill:
        st.caption(f"{percent(view.idle / view.bill, 1)} of the bill paid for GPUs no request was"
                   f" using, so the fully loaded cost per token is {loaded / busy:,.0f}× what"
                   " the busy GPU time alone costs: fewer idle GPUs lower it, faster"
                   " batching does not.")
    if filtered:
        with st.container(key="cost-selection"):
            spent, _rest = st.columns([1, 3])
            spent.metric("Spent by the selection", _money(view.spent_loaded),
                         f"busy-time {_money(view.spent)}", delta_color="off",
                         delta_arrow="off",
                         help="fully loaded: the selection's GPU time plus its share of idle"
                              " (by cost); busy-time: its GPU time alone")
    if view.unpriced:
        st.caption(f"{view.unpriced:,} requests ran on pods with no price in the GPU"
                   f" inventory and are not counted: `{GPU_IMPORT}` with those pods")
    if history.empty:
        st.info(f"No priced requests in these periods: `{LEDGER_IMPORT}` records them.",
                icon=":material/timeline:")
    else:
        with st.container(key="cost-per-token-chart"):
            for tab, kind in zip(st.tabs(["blended $/M", "output $/M", "input $/M"]),
                                 ("blended", "output", "input"), strict=True):
                with tab:
                    st.vega_lite_chart(*charts.cost_per_token(history, kind),
                                       width="stretch")
    if view.requests == 0:
        st.info(f"No requests in {view.period.label} for this selection: {LEDGER_IMPORT}"
                " records them.", icon=":material/receipt_long:")
        return
    st.markdown(f"**Where the money went** · {view.period.label}")
    tabs = st.tabs(["by tenant", "by feature", "by model"])
    for tab, frame in zip(tabs, (view.tenants, view.features, view.models), strict=True):
        with tab:
            st.vega_lite_chart(*charts.bars(frame, "loaded_cost", "GPU cost, fully loaded"),
                               width="stretch")
    columns = {"name": "model", "loaded_input_per_m": "$/M input",
               "loaded_output_per_m": "$/M output", "loaded_blended_per_m": "$/M blended",
               "busy_blended_per_m": "$/M blended, busy-time", "tokens": "tokens",
               "loaded_cost": "cost, fully loaded", "cost": "cost, busy-time"}
    money = {name: st.column_config.NumberColumn(format="$%.4f")
             for name in columns.values() if name.startswith("$/M")}
    st.dataframe(view.models[list(columns)].rename(columns=columns), hide_index=True,
                 column_config=money | {
                     "cost, fully loaded": st.column_config.NumberColumn(format="dollar"),
                     "cost, busy-time": st.column_config.NumberColumn(format="dollar"),
                     "tokens": st.column_config.NumberColumn(format="localized")})
    _roles(view.roles)
    basis = "fully loaded, idle shared by cost" if view.margin_basis == "fully_loaded" \
        else "busy-time only, idle not shared"
    st.markdown(f"**Gross margin per tenant** (revenue − GPU cost) / revenue · {basis}")
    if view.revenue_note:
        st.caption(view.revenue_note)
    if view.margin.empty:
        st.info(f"No revenue per tenant for {view.period.label}: `{REVENUE_IMPORT} FILE`"
                " shows each tenant's margin here.", icon=":material/savings:")
    else:
        with st.container(key="margin-chart"):
            st.vega_lite_chart(*charts.margins(view.margin), width="stretch")


def _roles(roles: pd.DataFrame) -> None:
    """The fleet's bill by role in P/D disaggregation (kpi_mapping.cost.by_role); nothing
    when no pod has a role."""
    if roles.empty:
        return
    st.markdown("**By role** · prefill and decode on separate pods (the whole fleet)")
    table = pd.DataFrame({
        "role": roles["name"], "pods": roles["pods"],
        "bill": roles["bill_cents"] / 100, "idle": roles["idle_cents"] / 100,
        "busy": (roles["busy_gpu_s"] / roles["provisioned_gpu_s"].where(
            roles["provisioned_gpu_s"] > 0)),
        "work": ["prompt tokens prefilled" if r == "prefill" else "output tokens"
                 if r == "decode" else "input + output tokens" for r in roles["role"]],
        "tokens": roles["tokens"], "$/M of its work": roles["per_m_tokens"],
        "queue per request": roles["queue_s_per_request"]})
    with st.container(key="cost-roles"):
        st.dataframe(table, hide_index=True, column_config={
            "bill": st.column_config.NumberColumn(format="dollar"),
            "idle": st.column_config.NumberColumn(format="dollar"),
            "busy": st.column_config.NumberColumn(format="percent"),
            "tokens": st.column_config.NumberColumn(format="localized"),
            "$/M of its work": st.column_config.NumberColumn(format="$%.4f"),
            "queue per request": st.column_config.NumberColumn(format="%.3f s")})
        st.caption("A prefill pod's GPU time is charged to the prompt tokens it prefilled, a"
                   " decode pod's to output tokens; each request and its tokens are counted"
                   " once (by the decode pod). $/M here is the role's own bill, its idle"
                   " included, per token of its work. Queue per request on decode pods holds"
                   " the wait for the KV transfer; the Disaggregated serving dashboard shows"
                   " the transfers themselves.")
