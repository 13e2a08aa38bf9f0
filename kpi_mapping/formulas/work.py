"""Engineering work from the issue tracker and CI: defects, debt, burndown, ideas, coverage."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from kpi_mapping.values import Value, missing, none, number, ratio

VELOCITY_WEEKS = 4
PIPELINE_WEEKS = 8


def _resolved_in(items: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    return items[(items["resolved"] >= start) & (items["resolved"] < end)]


def _open_at(items: pd.DataFrame, moment: datetime) -> pd.DataFrame:
    return items[(items["created"] < moment)
                 & (items["resolved"].isna() | (items["resolved"] >= moment))]


def cost_per_defect(items: pd.DataFrame, rates: pd.Series, start: datetime,
                    end: datetime) -> Value:
    """Σ fix hours × mean loaded hourly rate of the engineers / defects fixed (seed KPI 3)."""
    fixed = _resolved_in(items[items["type"] == "defect"], start, end)
    if fixed.empty:
        return none("no defects fixed in the period")
    hours = fixed["hours_spent"].astype("float64")
    if hours.isna().all():
        return missing("time spent on defects (work-items column Time Spent)")
    known = rates.astype("float64").dropna()
    if known.empty:
        return missing("hourly rates of engineers (people column hourly_rate)")
    rate = float(known.mean())
    return number(float(np.nansum(hours)) * rate / len(fixed), defects=len(fixed),
                  hours=round(float(np.nansum(hours)), 2), hourly_rate=round(rate, 2),
                  defects_without_hours=int(hours.isna().sum()))


def debt_reduction(items: pd.DataFrame, start: datetime, end: datetime) -> Value:
    """debt items resolved in the period / debt items open at its start."""
    debt = items[items["type"] == "debt"]
    at_start = len(_open_at(debt, start))
    done = len(_resolved_in(debt, start, end))
    return ratio(done, at_start, "no debt open at the start", resolved=done, open=at_start)


def burndown_days_late(items: pd.DataFrame, releases: pd.DataFrame, end: datetime) -> Value:
    """Forecast finish = period end + remaining points / trailing-4-week velocity; value =
    forecast − the release's target, days (negative: early). The release is the earliest
    target not yet released at the period's end."""
    pending = releases[releases["released"].isna()
                       | (pd.to_datetime(releases["released"]) >= pd.Timestamp(end.date()))]
    if pending.empty:
        return none("no release in progress at the period's end")
    release = pending.sort_values("target", kind="stable").iloc[0]
    scope = items[items["release"] == release["name"]]
    remaining = float(_open_at(scope, end)["points"].fillna(0).sum()) if not scope.empty \
        else 0.0
    recent = _resolved_in(items, end - timedelta(weeks=VELOCITY_WEEKS), end)
    velocity = float(recent["points"].fillna(0).sum()) / VELOCITY_WEEKS
    target = pd.Timestamp(release["target"]).date()
    detail: dict[str, float | int | str | None] = {
        "release": str(release["name"]), "target": target.isoformat(),
        "remaining_points": remaining, "velocity_per_week": round(velocity, 2)}
    if remaining and not velocity:
        return none("no points done in the last 4 weeks: no forecast", band="red", **detail)
    # the forecast day is the day the last point is done: whole days, rounded up
    finish = end.date() + timedelta(days=math.ceil(remaining / velocity * 7) if remaining else 0)
    detail["forecast"] = finish.isoformat()
    return number((finish - target).days, **detail)


def pipeline_weeks(items: pd.DataFrame, end: datetime) -> Value:
    """open ideas / ideas delivered per week over the trailing 8 weeks."""
    ideas = items[items["type"] == "idea"]
    waiting = len(_open_at(ideas, end))
    delivered = len(_resolved_in(ideas, end - timedelta(weeks=PIPELINE_WEEKS), end))
    return ratio(waiting * PIPELINE_WEEKS, delivered, "no ideas delivered in 8 weeks",
                 open_ideas=waiting, delivered=delivered)


def coverage(reports: pd.DataFrame, end: datetime) -> Value:
    """Σ covered lines / Σ lines over the latest report of each source before the end."""
    before = reports[reports["taken"] < end].sort_values("taken", kind="stable")
    latest = before.groupby("source", sort=True).tail(1)
    if latest.empty:
        return none("no coverage report before the period's end")
    return ratio(float(latest["lines_covered"].sum()), float(latest["lines_valid"].sum()),
                 "the reports count no lines", reports=len(latest),
                 taken=latest["taken"].max().isoformat())
