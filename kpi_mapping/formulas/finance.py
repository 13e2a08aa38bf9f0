"""The CEO side: finance KPIs of a period from monthly finance rows.

Months that overlap the period count by the share of their days inside it, so week,
month and quarter periods all add up; stocks (cash, receivables, accounts) are read at the
period's end and starting MRR and customers at its start. A period's length in months is
that sum of shares (a calendar month is 1, a quarter 3), never days / 30.44: a month's burn
is that month's burn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pandas as pd

from kpi_mapping.values import Value, missing, none, number, ratio

FLOWS = ("revenue", "cogs", "operating_expenses", "sales_marketing", "research_development",
         "net_income", "operating_cash_flow", "mrr_new", "mrr_expansion", "mrr_contraction",
         "mrr_churned", "customers_new", "customers_lost")


@dataclass(frozen=True)
class Window:
    """Finance of one period: flows summed, stocks at the edges."""

    days: float
    months: float  # Σ each overlapping month's share of its days inside the period
    flows: dict[str, float]
    cash: float
    receivables: float
    accounts: float
    mrr_start: float
    customers_start: float
    ebitda: float | None
    sales_cycle_days: float | None

    @property
    def net_new_arr(self) -> float:
        """ARR added in the period: 12 × (new + expansion − contraction − churned MRR)."""
        f = self.flows
        return 12 * (f["mrr_new"] + f["mrr_expansion"] - f["mrr_contraction"]
                     - f["mrr_churned"])

    @property
    def net_burn(self) -> float:
        """Cash burned in the period: − operating cash flow (negative: cash generated)."""
        return -self.flows["operating_cash_flow"]

    @property
    def net_burn_per_month(self) -> float:
        return self.net_burn / self.months


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def window(finance: pd.DataFrame, start: datetime, end: datetime) -> Window | None:
    """Σ month × (its days inside the period / its days); None when a month is not there."""
    rows = {pd.Timestamp(m).date(): r for m, r in zip(finance["month"],
                                                      finance.to_dict("records"), strict=True)}
    first, last = start.date(), (end - timedelta(days=1)).date()
    month, parts = first.replace(day=1), []
    while month <= last:
        following = _next_month(month)
        if month not in rows:
            return None
        inside = (min(following, last + timedelta(days=1)) - max(month, first)).days
        parts.append((rows[month], inside / (following - month).days))
        month = following
    flows = {name: sum(float(r[name]) * share for r, share in parts) for name in FLOWS}
    ebitda = [r.get("ebitda") for r, _ in parts]
    cycle = [(r.get("sales_cycle_days"), share) for r, share in parts]
    known_cycle = [(c, s) for c, s in cycle if c is not None and not pd.isna(c)]
    end_row, start_row = parts[-1][0], parts[0][0]
    return Window(
        days=(end - start).total_seconds() / 86400, months=sum(share for _, share in parts),
        flows=flows, cash=float(end_row["cash"]),
        receivables=float(end_row["receivables"]), accounts=float(end_row["accounts"]),
        mrr_start=float(start_row["mrr_start"]),
        customers_start=float(start_row["customers_start"]),
        ebitda=None if any(e is None or pd.isna(e) for e in ebitda)
        else sum(float(r["ebitda"]) * share for r, share in parts),
        sales_cycle_days=sum(c * s for c, s in known_cycle) / sum(s for _, s in known_cycle)
        if known_cycle else None)


NO_FINANCE = "finance for the period (llmkpi import finance)"


def revenue_growth(now: Window, before: Window | None) -> Value:
    """(revenue − previous revenue) / previous revenue (Partaker, OKRs for CEOs)."""
    if before is None:
        return missing("finance for the previous period")
    return ratio(now.flows["revenue"] - before.flows["revenue"], before.flows["revenue"],
                 "the previous period had no revenue", revenue=now.flows["revenue"])


def gross_margin(w: Window) -> Value:
    """(revenue − COGS) / revenue; the store's COGS includes the GPU bill."""
    return ratio(w.flows["revenue"] - w.flows["cogs"], w.flows["revenue"], "no revenue",
                 cogs=w.flows["cogs"])


def net_profit_margin(w: Window) -> Value:
    """net income / revenue."""
    return ratio(w.flows["net_income"], w.flows["revenue"], "no revenue")


def operating_cash_flow(w: Window) -> Value:
    """Σ operating cash flow of the period."""
    return number(w.flows["operating_cash_flow"])


def cash_runway_months(w: Window) -> Value:
    """cash at the period's end / the period's monthly net burn (net burn = − operating
    cash flow; a month's burn is that month's)."""
    burn = w.net_burn_per_month
    if burn <= 0:
        return none("cash-flow positive: no burn", cash=w.cash)
    return number(w.cash / burn, net_burn_per_month=burn)


def cac(w: Window) -> Value:
    """sales & marketing spend / new customers."""
    return ratio(w.flows["sales_marketing"], w.flows["customers_new"], "no new customers",
                 new_customers=w.flows["customers_new"])


def _arpa_monthly(w: Window) -> float:
    return w.flows["revenue"] / w.months / w.accounts if w.accounts else 0.0


def arpa(w: Window) -> Value:
    """the period's revenue / accounts at the period's end (KPI_SPEC; for a quarter a
    quarter's ARPA, its monthly figure beside)."""
    return ratio(w.flows["revenue"], w.accounts, "no accounts", accounts=w.accounts,
                 per_month=round(_arpa_monthly(w), 2), months=round(w.months, 4))


def churn_rate(w: Window) -> Value:
    """customers lost / customers at the start."""
    return ratio(w.flows["customers_lost"], w.customers_start, "no customers at the start",
                 customers_lost=w.flows["customers_lost"])


def ltv(w: Window) -> Value:
    """ARPA × gross margin / monthly churn (the SaaS-metrics textbook form)."""
    if not w.flows["revenue"] or not w.customers_start:
        return none("no revenue or no customers")
    churn = w.flows["customers_lost"] / w.customers_start / w.months
    margin = (w.flows["revenue"] - w.flows["cogs"]) / w.flows["revenue"]
    if churn <= 0:
        return none("no churn: lifetime unbounded")
    return number(_arpa_monthly(w) * margin / churn, monthly_churn=churn)


def ltv_to_cac(w: Window) -> Value:
    """LTV / CAC."""
    value, cost = ltv(w).value, cac(w).value
    if value is None or not cost:
        return none("LTV or CAC has no value")
    return number(value / cost)


def net_revenue_retention(w: Window) -> Value:
    """(start MRR + expansion − contraction − churned) / start MRR."""
    f = w.flows
    return ratio(w.mrr_start + f["mrr_expansion"] - f["mrr_contraction"] - f["mrr_churned"],
                 w.mrr_start, "no MRR at the start")


def burn_multiple(w: Window) -> Value:
    """net burn / net new ARR, both over the period (David Sacks, "The Burn Multiple",
    2020). A period that made cash has no burn and so no multiple."""
    if w.net_burn <= 0:
        return none("cash-flow positive: no burn, so no burn multiple",
                    net_burn=w.net_burn, net_new_arr=w.net_new_arr)
    if w.net_new_arr <= 0:
        return none("no net new ARR: burning without growing", net_burn=w.net_burn,
                    net_new_arr=w.net_new_arr)
    return number(w.net_burn / w.net_new_arr, net_burn=w.net_burn, net_new_arr=w.net_new_arr)


def sales_cycle_days(w: Window) -> Value:
    """mean(close − first contact), days, as finance reports it."""
    if w.sales_cycle_days is None:
        return missing("finance column sales_cycle_days")
    return number(w.sales_cycle_days)


def dso(w: Window) -> Value:
    """receivables at the end / revenue × days in the period."""
    return ratio(w.receivables * w.days, w.flows["revenue"], "no revenue")


def growth_efficiency(w: Window) -> Value:
    """net new ARR / (S&M + R&D spend), both over the period."""
    spend = w.flows["sales_marketing"] + w.flows["research_development"]
    return ratio(w.net_new_arr, spend, "no S&M or R&D spend", net_new_arr=w.net_new_arr,
                 spend=spend)


def ebitda(w: Window) -> Value:
    """EBITDA as finance reports it."""
    if w.ebitda is None:
        return missing("finance column ebitda")
    return number(w.ebitda)


def per_year(w: Window, amount: float) -> float:
    """A flow of the period as a yearly rate: × 12 / its months."""
    return amount * 12 / w.months
