"""Product analytics (Mixpanel events) and integrations: adoption, NPS, returning users,
compatibility, and the revenue attributable to shipped features."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from kpi_mapping.values import Value, none, number, ratio


def _in(events: pd.DataFrame, name: str, start: datetime, end: datetime) -> pd.DataFrame:
    chosen = events[events["event"] == name]
    return chosen[(chosen["happened"] >= start) & (chosen["happened"] < end)]


def shipped_features(events: pd.DataFrame, end: datetime) -> pd.DataFrame:
    """feature, shipped: each feature's first feature_deployed event before the end."""
    deployed = events[(events["event"] == "feature_deployed") & (events["happened"] < end)]
    firsts = deployed.dropna(subset=["feature"]).groupby("feature", sort=True)["happened"]
    return firsts.min().reset_index().rename(columns={"happened": "shipped"})


def adoption(events: pd.DataFrame, start: datetime, end: datetime) -> Value:
    """users who engaged the newest shipped feature / users who engaged any feature
    (Mixpanel's adoption funnel: feature_deployed → feature_engaged)."""
    shipped = shipped_features(events, end)
    if shipped.empty:
        return none("no feature_deployed event before the period's end")
    engaged = _in(events, "feature_engaged", start, end)
    active = engaged["distinct_id"].nunique()
    newest = str(shipped.sort_values("shipped", kind="stable")["feature"].iloc[-1])
    adopters = engaged.loc[engaged["feature"] == newest, "distinct_id"].nunique()
    return ratio(adopters, active, "no active users in the period", feature=newest,
                 adopters=adopters, active_users=active)


RELATIONSHIP, IN_PRODUCT = "relationship", "in_product"


def nps(events: pd.DataFrame, start: datetime, end: datetime, survey: str | None = None
        ) -> Value:
    """% promoters (9–10) − % detractors (0–6) over nps_submitted scores (Reichheld).

    With `survey`, only the answers to that survey (the event's `survey` property): the
    CEO's NPS is the relationship survey of accounts, the CTO's satisfaction the in-product
    one. A company whose events carry no `survey` property has one series for both."""
    answers = _in(events, "nps_submitted", start, end)
    labelled = "survey" in answers and bool(
        events.loc[events["event"] == "nps_submitted", "survey"].notna().any())
    if survey is not None and labelled:
        answers = answers[answers["survey"] == survey]
    scores = answers["score"].dropna().astype("float64")
    if scores.empty:
        return none(f"no {survey.replace('_', '-')} survey answers in the period"
                    if survey is not None and labelled else "no survey answers in the period")
    promoters, detractors = int((scores >= 9).sum()), int((scores <= 6).sum())
    return number(100.0 * (promoters - detractors) / len(scores), responses=len(scores),
                  promoters=promoters, detractors=detractors)


def returning_users(events: pd.DataFrame, before: tuple[datetime, datetime],
                    now: tuple[datetime, datetime]) -> float | None:
    """users active in the previous period who are active again / previous active users."""
    engaged = events[events["event"] == "feature_engaged"]

    def users(span: tuple[datetime, datetime]) -> set[str]:
        inside = engaged[(engaged["happened"] >= span[0]) & (engaged["happened"] < span[1])]
        return set(inside["distinct_id"])

    earlier = users(before)
    return len(earlier & users(now)) / len(earlier) if earlier else None


def compatibility(attempts: pd.DataFrame, events: pd.DataFrame, start: datetime,
                  end: datetime) -> Value:
    """successful integrations / attempts: the integrations import when it covers the
    period, else integration_attempted events."""
    rows = attempts[(attempts["attempted"] >= start) & (attempts["attempted"] < end)]
    source = "integrations"
    success = rows["success"].astype(bool)
    if rows.empty:
        source = "integration_attempted events"
        success = _in(events, "integration_attempted", start, end)["success"].dropna()
        success = success.astype(bool)
    return ratio(float(success.sum()), float(len(success)), "no integration attempts",
                 attempts=len(success), source=source)


def attributable_revenue(events: pd.DataFrame, revenue: float, start: datetime,
                         end: datetime) -> Value:
    """revenue × users engaging shipped features / active users: the part of revenue that
    comes with the features engineering shipped (llmkpi's attribution rule for EPI)."""
    shipped = set(shipped_features(events, end)["feature"])
    if not shipped:
        return none("no feature_deployed event before the period's end")
    engaged = _in(events, "feature_engaged", start, end)
    active = engaged["distinct_id"].nunique()
    users = engaged.loc[engaged["feature"].isin(shipped), "distinct_id"].nunique()
    return ratio(revenue * users, active, "no active users in the period",
                 share=round(users / active, 4) if active else None)
