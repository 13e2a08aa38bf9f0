"""Headcount, exits and turnover from employment stints (a person who leaves and comes back
has two stints: the gap counts as no one, the exit counts once, the return is a hire)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from kpi_mapping.values import Value, none, number

QUARTER_DAYS = 365.25 / 4
WORK_HOURS_PER_YEAR = 1800.0


def _select(people: pd.DataFrame, tech_only: bool, teams: tuple[str, ...] | None
            ) -> pd.DataFrame:
    chosen = people
    if tech_only:
        chosen = chosen[chosen["tech"].astype(bool)]
    if teams:
        chosen = chosen[chosen["team"].isin(teams)]
    return chosen


def average_headcount(people: pd.DataFrame, start: datetime, end: datetime,
                      tech_only: bool = False, teams: tuple[str, ...] | None = None) -> float:
    """Σ days each stint overlaps the period / days in the period (exit day still worked)."""
    chosen = _select(people, tech_only, teams)
    if chosen.empty:
        return 0.0
    first, stop = pd.Timestamp(start.date()), pd.Timestamp(end.date())
    hired = pd.to_datetime(chosen["hired"])
    left = pd.to_datetime(chosen["exited"]) + timedelta(days=1)
    lo = hired.where(hired > first, first)
    hi = left.fillna(stop).where(left.fillna(stop) < stop, stop)
    days = (hi - lo).dt.days.clip(lower=0)
    return float(days.sum()) / max(1, (stop - first).days)


def exits(people: pd.DataFrame, start: datetime, end: datetime, tech_only: bool = False,
          teams: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Stints whose last day falls in the period."""
    chosen = _select(people, tech_only, teams)
    left = pd.to_datetime(chosen["exited"])
    inside = (left >= pd.Timestamp(start.date())) & (left < pd.Timestamp(end.date()))
    return chosen[inside.fillna(False).to_numpy(dtype=bool)]


def turnover(people: pd.DataFrame, start: datetime, end: datetime) -> Value:
    """exits / average headcount over the period (Partaker, KPI 14)."""
    heads = average_headcount(people, start, end)
    leavers = len(exits(people, start, end))
    if not heads:
        return none("nobody employed in the period")
    return number(leavers / heads, exits=leavers, average_headcount=round(heads, 2))


def attrition_per_quarter(people: pd.DataFrame, start: datetime, end: datetime,
                          teams: tuple[str, ...] | None = None,
                          replacement_share: float | None = None) -> Value:
    """tech exits / average tech headcount, scaled to a quarter so bands compare across
    periods; with replacement_share, replacement cost = Σ leaver's hourly rate × 1,800 h ×
    share (SHRM's rule of thumb puts it at half to two times a year's pay)."""
    heads = average_headcount(people, start, end, tech_only=True, teams=teams)
    if not heads:
        return none("no engineers employed in the period")
    leavers = exits(people, start, end, tech_only=True, teams=teams)
    days = (end - start).total_seconds() / 86400
    detail: dict[str, float | int | str | None] = {
        "exits": len(leavers), "average_headcount": round(heads, 2)}
    if replacement_share is not None:
        rates = leavers["hourly_rate"].astype("float64")
        detail["replacement_cost"] = float(np.nansum(rates * WORK_HOURS_PER_YEAR
                                                     * replacement_share))
    return number(len(leavers) / heads * QUARTER_DAYS / days, **detail)
