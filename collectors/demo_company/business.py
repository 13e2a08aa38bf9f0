"""Finance per month, people (hires and exits), revenue per tenant — one consistent ledger.

MRR moves by new, expansion, contraction and churned revenue; the outage month's churn is
higher; COGS carries the fleet's GPU bill; payroll follows headcount; cash follows the
operating cash flow.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from collectors.demo_company.timeline import Timeline, days_in
from collectors.demo_company.traffic import Traffic

TEAMS = {"inference": True, "platform": True, "product-eng": True, "data": True,
         "sales": False, "marketing": False, "support": False, "finance-ops": False}
SALARY = {True: 165_000.0, False: 115_000.0}  # loaded per year
# What each API tenant pays per million tokens under its contract (input and output alike).
# The two biggest bought volume discounts below what serving them costs once idle GPU time is
# shared; the third sits near break-even; tenant-0003 pays list price and is very profitable.
CONTRACT_PER_MILLION = (0.19, 0.19, 0.24, 1.20, 0.45, 0.60, 0.50, 0.80)


@dataclass
class Person:
    person: str
    team: str
    tech: bool
    hired: date
    exited: date | None
    hourly_rate: float


def people(timeline: Timeline) -> list[Person]:
    rng = random.Random(timeline.seed * 101 + 1)
    staff: list[Person] = []
    serial = 0
    teams = list(TEAMS)

    def hire(day: date, team: str) -> None:
        nonlocal serial
        serial += 1
        tech = TEAMS[team]
        rate = SALARY[tech] / 1800 * (0.85 + rng.random() * 0.3)
        staff.append(Person(f"p{serial:04d}", team, tech, day, None, round(rate, 2)))

    founding = timeline.months[0] - timedelta(days=400)
    for i in range(30):
        hire(founding + timedelta(days=rng.randint(0, 380)), teams[i % len(teams)])
    for index, month in enumerate(timeline.months):
        for _ in range(rng.randint(1, 3) + (1 if index > len(timeline.months) // 2 else 0)):
            hire(month + timedelta(days=rng.randint(0, days_in(month) - 1)), rng.choice(teams))
        active = [p for p in staff if p.exited is None and p.hired < month]
        leavers = rng.sample(active, k=min(len(active), rng.choice((0, 0, 1, 1, 2))))
        if index == len(timeline.months) // 2 + 1:  # after the outage, two engineers leave
            leavers += [p for p in active if p.tech and p not in leavers][:2]
        for person in leavers:
            person.exited = month + timedelta(days=rng.randint(0, days_in(month) - 1))
    return staff


def headcount(staff: list[Person], month: date, tech_only: bool = False) -> float:
    mid = month + timedelta(days=14)
    return float(sum(1 for p in staff if p.hired <= mid and (p.exited is None or p.exited >= mid)
                     and (p.tech or not tech_only)))


def finance(timeline: Timeline, staff: list[Person], gpu_bills: list[float], traffic: Traffic
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Finance rows, and each API tenant's revenue: its contract's price per million tokens
    times the tokens its traffic is expected to use that month (a small part of revenue:
    the rest is seat subscriptions)."""
    rng = random.Random(timeline.seed * 211 + 3)
    outage_month = timeline.month_index(timeline.outage.start)
    customers, mrr, cash = 96, 310_000.0, 4_800_000.0
    rows: list[dict[str, Any]] = []
    by_tenant: list[dict[str, Any]] = []
    for index, month in enumerate(timeline.months):
        arpa = mrr / customers
        new = max(2, round(rng.gauss(9 + index * 0.4, 2)))
        churn_rate = 0.025 + rng.random() * 0.01 + (0.03 if index == outage_month + 1 else 0)
        lost = max(0, round(customers * churn_rate + rng.gauss(0, 0.6)))
        mrr_new = new * arpa * (0.7 + rng.random() * 0.4)
        expansion = mrr * (0.02 + rng.random() * 0.025)
        contraction = mrr * (0.004 + rng.random() * 0.006)
        churned = lost * arpa * (0.8 + rng.random() * 0.4)
        mrr_end = mrr + mrr_new + expansion - contraction - churned
        revenue = (mrr + mrr_end) / 2
        heads, tech = headcount(staff, month), headcount(staff, month, tech_only=True)
        payroll = (tech * SALARY[True] + (heads - tech) * SALARY[False]) / 12
        cogs = gpu_bills[index] + revenue * (0.11 + rng.random() * 0.02)  # GPUs + hosting
        sales_marketing = payroll * 0.3 + 40_000 + rng.random() * 20_000
        research = tech * SALARY[True] / 12
        opex = payroll + 55_000 + rng.random() * 15_000
        ebitda = revenue - cogs - opex
        net_income = ebitda - 12_000
        receivables = revenue * (38 + rng.random() * 14) / 30
        previous = rows[-1]["receivables"] if rows else receivables
        operating_cash_flow = net_income - (receivables - previous)
        cash += operating_cash_flow
        rows.append({
            "month": month.isoformat()[:7], "revenue": round(revenue, 2),
            "cogs": round(cogs, 2), "operating_expenses": round(opex, 2),
            "sales_marketing": round(sales_marketing, 2),
            "research_development": round(research, 2), "cash": round(cash, 2),
            "receivables": round(receivables, 2), "mrr_start": round(mrr, 2),
            "mrr_new": round(mrr_new, 2), "mrr_expansion": round(expansion, 2),
            "mrr_contraction": round(contraction, 2), "mrr_churned": round(churned, 2),
            "net_income": round(net_income, 2),
            "operating_cash_flow": round(operating_cash_flow, 2),
            "customers_start": customers, "customers_new": new, "customers_lost": lost,
            "accounts": customers + new - lost, "ebitda": round(ebitda, 2),
            "sales_cycle_days": round(rng.gauss(42 - index * 0.8, 4), 1)})
        for number, tenant in enumerate(timeline.tenants):
            price = CONTRACT_PER_MILLION[number % len(CONTRACT_PER_MILLION)]
            tokens = traffic.expected_tokens(index, tenant)
            by_tenant.append({"month": month.isoformat()[:7], "tenant": tenant,
                              "revenue": round(price * tokens / 1e6, 2)})
        customers, mrr = customers + new - lost, mrr_end
    return rows, by_tenant
