"""DORA metrics as Apache DevLake computes them, and MTTR.

Production deployments are those to an environment named production/prod. A change is a
commit; its lead time runs from authoring to the end of the first successful production
deployment that carried it. A service's first deployment is left out of lead time: it
carries every commit before it (DevLake's "first deployment inherits history" pitfall).
An incident marks a deployment failed only when it links to it and was detected within
LINK_WINDOW of the deployment finishing, so an old link cannot fail a deployment.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from kpi_mapping.values import Value, none, number

PRODUCTION = ("production", "prod")
LINK_WINDOW = timedelta(days=7)
HOUR = 3600.0


def production(deployments: pd.DataFrame) -> pd.DataFrame:
    return deployments[deployments["environment"].str.lower().isin(PRODUCTION)]


def successful(deployments: pd.DataFrame) -> pd.DataFrame:
    prod = production(deployments)
    return prod[prod["result"].str.lower() == "success"]


def _in(frame: pd.DataFrame, column: str, start: datetime, end: datetime) -> pd.DataFrame:
    return frame[(frame[column] >= start) & (frame[column] < end)]


def lead_time_hours(deployments: pd.DataFrame, commits: pd.DataFrame, start: datetime,
                    end: datetime) -> Value:
    """median(first successful production deploy finished − commit authored), hours
    (DORA lead time for changes; DevLake)."""
    ok = successful(deployments).sort_values("finished", kind="stable")
    if _in(ok, "finished", start, end).empty:
        return none("no successful production deployment in the period")
    firsts = ok.groupby("service", sort=False).head(1)["id"]
    shipped = ok[~ok["id"].isin(firsts)]
    changes = shipped.assign(sha=shipped["commit_shas"].str.split()).explode("sha")
    changes = changes.dropna(subset=["sha"]).drop_duplicates("sha", keep="first")
    changes = _in(changes, "finished", start, end).merge(
        commits[["sha", "authored"]], on="sha", how="inner")
    if changes.empty:
        return none("the period's deployments carry no known commits",
                    excluded_first_deployments=len(firsts))
    hours = (changes["finished"] - changes["authored"]).dt.total_seconds() / HOUR
    return number(float(hours.median()), changes=len(changes),
                  mean_hours=round(float(hours.mean()), 3))


def _linked(deployments: pd.DataFrame, incidents: pd.DataFrame) -> pd.DataFrame:
    """(deployment, incident) pairs detected within LINK_WINDOW after the deployment."""
    pairs = deployments.merge(incidents, left_on="id", right_on="deployment_id",
                              suffixes=("", "_incident"))
    return pairs[(pairs["detected"] >= pairs["started"])
                 & (pairs["detected"] <= pairs["finished"] + LINK_WINDOW)]


def deployment_frequency(deployments: pd.DataFrame, incidents: pd.DataFrame,
                         start: datetime, end: datetime) -> Value:
    """days with a successful production deployment per week (DevLake's deployment days),
    deployments per day, and change failure rate = production deployments linked to ≥ 1
    incident / production deployments (never incidents / deployments)."""
    weeks = (end - start).total_seconds() / (7 * 86400)
    ok = _in(successful(deployments), "finished", start, end)
    days = ok["finished"].dt.floor("D").nunique()
    tried = _in(production(deployments), "finished", start, end)
    failed = _linked(tried, incidents)["id"].nunique()
    detail: dict[str, float | int | str | None] = {
        "deployments": len(ok), "deploys_per_day": round(len(ok) / (weeks * 7), 3),
        "change_failure_rate": round(failed / len(tried), 4) if len(tried) else None,
        "failed_deployments": failed}
    return number(days / weeks, **detail)


def mttr_hours(incidents: pd.DataFrame, deployments: pd.DataFrame, start: datetime,
               end: datetime) -> Value:
    """mean(resolved − detected) over incidents resolved in the period, median beside, and
    DORA failed-deployment recovery = median(resolved − deployment finished)."""
    done = _in(incidents[incidents["resolved"].notna()], "resolved", start, end)
    open_now = incidents[(incidents["detected"] < end)
                         & (incidents["resolved"].isna() | (incidents["resolved"] >= end))]
    if done.empty:
        return none("no incidents resolved in the period", band="green" if open_now.empty
                    else None, open_incidents=len(open_now))
    hours = (done["resolved"] - done["detected"]).dt.total_seconds() / HOUR
    linked = _linked(production(deployments), done)
    recovery = ((linked["resolved"] - linked["finished"]).dt.total_seconds() / HOUR)
    return number(float(hours.mean()), median_hours=round(float(hours.median()), 3),
                  incidents=len(done), open_incidents=len(open_now),
                  failed_deployment_recovery_hours=round(float(recovery.median()), 3)
                  if len(recovery) else None)


def security_response_hours(incidents: pd.DataFrame, start: datetime, end: datetime) -> Value:
    """mean(contained − detected) over security incidents detected in the period (resolved
    time where containment was not recorded)."""
    security = _in(incidents[incidents["category"].str.lower() == "security"], "detected",
                   start, end)
    contained = security["contained"].fillna(security["resolved"])
    known = contained.notna()
    if not known.any():
        return none("no security incidents contained in the period",
                    band="green" if security.empty else None, open_incidents=len(security))
    hours = (contained[known] - security["detected"][known]).dt.total_seconds() / HOUR
    return number(float(hours.mean()), incidents=int(known.sum()),
                  median_hours=round(float(hours.median()), 3))
