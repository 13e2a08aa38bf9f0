"""Both sides of each of the 19 mappings for one period: the mapping's id bound to the
formulas that compute its CEO KPI and its CTO metric from the loaded inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property

import pandas as pd

from kpi_mapping.config import KpiConfig
from kpi_mapping.formulas import dora, people, product, serving, work
from kpi_mapping.formulas import finance as fin
from kpi_mapping.inputs import Inputs
from kpi_mapping.periods import Period, period_containing
from kpi_mapping.values import MONTHLY, Value, missing, none, number

Side = Callable[["Context"], Value]


@dataclass(frozen=True)
class Context:
    inputs: Inputs
    period: Period
    config: KpiConfig

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.period.start)

    @property
    def end(self) -> pd.Timestamp:
        return pd.Timestamp(self.period.end)

    @cached_property
    def finance_period(self) -> Period:
        """Finance is monthly: a week is judged on the month its last day falls in (a week
        split by days would show two weeks of one month as "no change")."""
        if self.period.kind != "week":
            return self.period
        return period_containing("month", (self.period.end - timedelta(days=1)).date())

    @cached_property
    def window(self) -> fin.Window | None:
        p = self.finance_period
        return fin.window(self.inputs.finance, p.start, p.end)

    @cached_property
    def hours(self) -> serving.Hours:
        return self.inputs.hours.between(self.period.start, self.period.end)

    @cached_property
    def snapshots(self) -> pd.DataFrame:
        taken = self.inputs.snapshots["taken"]
        return self.inputs.snapshots[(taken >= self.start) & (taken < self.end)]


def _finance(formula: Callable[[fin.Window], Value]) -> Side:
    def side(ctx: Context) -> Value:
        lack = ctx.inputs.lacks("finance")
        if lack:
            return missing(lack)
        if ctx.window is None:
            return missing(f"finance for every month of {ctx.finance_period.label}"
                           " (llmkpi import finance)")
        value = formula(ctx.window)
        if ctx.finance_period != ctx.period:
            value = replace(value, detail=value.detail | {MONTHLY: ctx.finance_period.label})
        return value
    return side


def _needs(*sources: str) -> Callable[[Side], Side]:
    def wrap(formula: Side) -> Side:
        def side(ctx: Context) -> Value:
            lack = ctx.inputs.lacks(*sources)
            return missing(lack) if lack else formula(ctx)
        return side
    return wrap


def _growth(ctx: Context) -> Value:
    previous = ctx.finance_period.previous()
    before = fin.window(ctx.inputs.finance, previous.start, previous.end)
    return _finance(lambda w: fin.revenue_growth(w, before))(ctx)


def _tech_rates(ctx: Context) -> pd.Series:
    staff = ctx.inputs.people
    hired = pd.to_datetime(staff["hired"])
    left = pd.to_datetime(staff["exited"])
    employed = (hired < pd.Timestamp(ctx.period.end.date())) & (
        left.isna() | (left >= pd.Timestamp(ctx.period.start.date())))
    return staff.loc[employed & staff["tech"].astype(bool), "hourly_rate"]


@_needs("people")
def _revenue_per_employee(ctx: Context) -> Value:
    def formula(w: fin.Window) -> Value:
        heads = people.average_headcount(ctx.inputs.people, ctx.period.start, ctx.period.end)
        if not heads:
            return none("nobody employed in the period")
        return number(fin.per_year(w, w.flows["revenue"]) / heads,
                      average_headcount=round(heads, 2))
    return _finance(formula)(ctx)


@_needs("people", "mixpanel")
def _epi(ctx: Context) -> Value:
    def formula(w: fin.Window) -> Value:
        heads = people.average_headcount(ctx.inputs.people, ctx.period.start,
                                         ctx.period.end, tech_only=True)
        share = product.attributable_revenue(ctx.inputs.events, w.flows["revenue"],
                                             ctx.period.start, ctx.period.end)
        if share.value is None:
            return share
        if not heads:
            return none("no engineers employed in the period")
        return number(fin.per_year(w, share.value) / heads,
                      attributable_revenue=round(share.value, 2),
                      average_tech_headcount=round(heads, 2), **share.detail)
    return _finance(formula)(ctx)


@_needs("mixpanel")
def _satisfaction(ctx: Context) -> Value:
    score = product.nps(ctx.inputs.events, ctx.period.start, ctx.period.end,
                        product.IN_PRODUCT)
    previous = ctx.period.previous()
    back = product.returning_users(ctx.inputs.events, (previous.start, previous.end),
                                   (ctx.period.start, ctx.period.end))
    return Value(score.value, score.missing, score.note, score.band,
                 score.detail | {"returning_user_rate": round(back, 4) if back is not None
                                 else None})


def _uptime(ctx: Context) -> Value:
    if ctx.inputs.lacks("engine snapshots") and ctx.inputs.lacks("ledger"):
        return missing(str(ctx.inputs.lacks("engine snapshots")))
    return serving.uptime(ctx.snapshots, ctx.hours, ctx.period.start, ctx.period.end,
                          ctx.config.throttled_is_failure)


def _compatibility(ctx: Context) -> Value:
    if ctx.inputs.lacks("integrations") and ctx.inputs.lacks("mixpanel"):
        return missing(str(ctx.inputs.lacks("integrations")))
    return product.compatibility(ctx.inputs.integrations, ctx.inputs.events,
                                 ctx.period.start, ctx.period.end)


def _i(ctx: Context) -> Inputs:
    return ctx.inputs


SIDES: dict[int, tuple[Side, Side]] = {
    1: (_growth, _needs("deployments", "git")(lambda c: dora.lead_time_hours(
        _i(c).deployments, _i(c).commits, c.period.start, c.period.end))),
    2: (_finance(fin.gross_margin), _needs("gpus", "ledger")(lambda c: serving.utilization(
        c.hours, _i(c).gpus, c.snapshots, c.period.start, c.period.end))),
    3: (_finance(fin.net_profit_margin), _needs("work-items", "people")(
        lambda c: work.cost_per_defect(_i(c).work_items, _tech_rates(c), c.period.start,
                                       c.period.end))),
    4: (_finance(fin.operating_cash_flow), _needs("work-items")(
        lambda c: work.debt_reduction(_i(c).work_items, c.period.start, c.period.end))),
    5: (_finance(fin.cash_runway_months), _needs("work-items", "releases")(
        lambda c: work.burndown_days_late(_i(c).work_items, _i(c).releases, c.period.end))),
    6: (_finance(fin.cac), _needs("mixpanel")(
        lambda c: product.adoption(_i(c).events, c.period.start, c.period.end))),
    7: (_finance(fin.ltv), _uptime),
    8: (_finance(fin.ltv_to_cac), _needs("coverage")(
        lambda c: work.coverage(_i(c).coverage, c.period.end))),
    9: (_finance(fin.net_revenue_retention), _needs("ledger")(
        lambda c: serving.scalability_index(c.hours, c.config.slo_ttft_seconds))),
    10: (_finance(fin.churn_rate), _needs("incidents")(lambda c: dora.mttr_hours(
        _i(c).incidents, _i(c).deployments, c.period.start, c.period.end))),
    11: (_finance(fin.arpa), _needs("work-items")(
        lambda c: work.pipeline_weeks(_i(c).work_items, c.period.end))),
    12: (_finance(fin.burn_multiple), _needs("deployments")(
        lambda c: dora.deployment_frequency(_i(c).deployments, _i(c).incidents,
                                            c.period.start, c.period.end))),
    13: (_finance(fin.sales_cycle_days), _needs("ledger")(
        lambda c: serving.response_time(c.hours))),
    14: (_needs("people")(lambda c: people.turnover(_i(c).people, c.period.start,
                                                     c.period.end)),
         _needs("people")(lambda c: people.attrition_per_quarter(
             _i(c).people, c.period.start, c.period.end, teams=c.config.engineering_teams))),
    15: (_needs("mixpanel")(lambda c: product.nps(_i(c).events, c.period.start,
                                                   c.period.end, product.RELATIONSHIP)),
         _satisfaction),
    16: (_finance(fin.dso), _compatibility),
    17: (_finance(fin.growth_efficiency), _needs("incidents")(
        lambda c: dora.security_response_hours(_i(c).incidents, c.period.start,
                                               c.period.end))),
    18: (_finance(fin.ebitda), _needs("people")(lambda c: people.attrition_per_quarter(
        _i(c).people, c.period.start, c.period.end,
        replacement_share=c.config.replacement_cost_share))),
    19: (_revenue_per_employee, _epi),
}


def both_sides(mapping_id: int, ctx: Context) -> tuple[Value, Value]:
    ceo, cto = SIDES[mapping_id]
    return ceo(ctx), cto(ctx)
