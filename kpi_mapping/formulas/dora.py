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

from collectors.shas import ShaIndex
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
    (DORA lead time for changes; DevLake). A commit's lead time ends at the first successful
    production deployment that carried it; when that was its service's first deployment
    (which inherits all history) it is left out, and never counted again by a later
    deployment that lists it. Deployment logs may name commits by a unique prefix."""
    ok = successful(deployments).sort_values("finished", kind="stable")
    if _in(ok, "finished", start, end).empty:
        return none("no successful production deployment in the period")
    firsts = set(ok.groupby("service", sort=False).head(1)["id"])
    index = ShaIndex(commits["sha"])
    changes = ok.assign(written=ok["commit_shas"].str.split()).explode("written")
    changes = changes.dropna(subset=["written"])
    resolved = [index.resolve(w) for w in changes["written"]]
    changes = changes.assign(sha=[r.sha for r in resolved],
                             status=[r.status for r in resolved])
    # the first successful production deployment of each commit, whichever service it was
    changes = changes.drop_duplicates("sha", keep="first")
    changes = changes[~changes["id"].isin(firsts)]
    changes = _in(changes, "finished", start, end)
    unknown = int((changes["status"] != "resolved").sum())
    changes = changes.merge(commits[["sha", "authored"]], on="sha", how="inner")
    if changes.empty:
        return none("the period's deployments carry no known commits",
                    excluded_first_deployments=len(firsts), unknown_commits=unknown)
    hours = (changes["finished"] - changes["authored"]).dt.total_seconds() / HOUR
    return number(float(hours.median()), changes=len(changes), unknown_commits=unknown,
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
    deployments per day, and change failure rate = successful production deployments linked
    to ≥ 1 incident / successful production deployments (DevLake's query; never incidents /
    deployments). Failed deployment attempts are their own figure."""
    weeks = (end - start).total_seconds() / (7 * 86400)
    ok = _in(successful(deployments), "finished", start, end)
    days = ok["finished"].dt.floor("D").nunique()
    tried = _in(production(deployments), "finished", start, end)
    caused = _linked(ok, incidents)["id"].nunique()
    detail: dict[str, float | int | str | None] = {
        "deployments": len(ok), "deploys_per_day": round(len(ok) / (weeks * 7), 3),
        "change_failure_rate": round(caused / len(ok), 4) if len(ok) else None,
        "deployments_causing_incidents": caused,
        "failed_deployment_attempts": len(tried) - len(ok)}
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
