"""Every formula against expectations computed by hand on small frames."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from collectors.rollup import LATENCY_BOUNDS
from kpi_mapping.formulas import dora, finance, people, product, serving, work


def t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


OCT, NOV = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)


def deployments(*rows: tuple[str, str, str, str, str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["id", "service", "environment", "result", "finished",
                                        "commit_shas"])
    frame["finished"] = pd.to_datetime(frame["finished"], utc=True)
    frame["started"] = frame["finished"] - pd.Timedelta(minutes=10)
    return frame


def incidents(*rows: tuple[str, str, str | None, str | None, str | None, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["id", "category", "detected", "contained", "resolved",
                                        "deployment_id"])
    for name in ("detected", "contained", "resolved"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


NO_INCIDENTS = incidents()


class TestDora:
    DEPLOYS = deployments(
        ("d0", "api", "production", "success", "2026-09-01T12:00Z", "a0 a1"),  # first: inherits
        ("d1", "api", "production", "success", "2026-10-05T12:00Z", "c1 c2"),
        ("d2", "api", "production", "failed", "2026-10-06T12:00Z", "c3"),
        ("d3", "api", "production", "success", "2026-10-07T12:00Z", "c3"),
        ("d4", "api", "staging", "success", "2026-10-08T12:00Z", "c4"),
        ("d5", "api", "production", "success", "2026-10-07T18:00Z", ""),  # no commits
    )
    COMMITS = pd.DataFrame({"sha": ["a0", "a1", "c1", "c2", "c3", "c4"], "authored": [
        t("2024-01-01"), t("2026-08-31"), t("2026-10-05T02:00"), t("2026-10-04T12:00"),
        t("2026-10-07T06:00"), t("2026-10-08T00:00")]})

    def test_lead_time_is_the_median_per_commit_leaving_out_the_first_deployment(self) -> None:
        value = dora.lead_time_hours(self.DEPLOYS, self.COMMITS, OCT, NOV)
        # c1: 10 h, c2: 24 h, c3: 6 h (first successful deploy d3); a0/a1 inherited by d0
        assert value.value == 10.0 and value.detail["changes"] == 3

    def test_a_deployment_without_commits_counts_as_a_deploy_day_but_no_change(self) -> None:
        only = self.DEPLOYS[self.DEPLOYS["id"].isin(["d0", "d5"])]
        lead = dora.lead_time_hours(only, self.COMMITS, OCT, NOV)
        assert lead.value is None and lead.note == "the period's deployments carry no known" \
            " commits"
        freq = dora.deployment_frequency(only, NO_INCIDENTS, OCT, NOV)
        assert freq.value == pytest.approx(1 / (31 / 7))

    def test_deployment_days_and_a_time_bounded_change_failure_rate(self) -> None:
        linked = incidents(
            ("i1", "availability", "2026-10-06T13:00Z", None, "2026-10-06T15:00Z", "d2"),
            ("i2", "availability", "2026-10-30T00:00Z", None, "2026-10-30T01:00Z", "d1"))
        value = dora.deployment_frequency(self.DEPLOYS, linked, OCT, NOV)
        # successful production deploys on Oct 5 and Oct 7 (twice): 2 days in 31/7 weeks
        assert value.value == pytest.approx(2 / (31 / 7))
        assert value.detail["deployments"] == 3
        # d2 is a failed attempt (its incident does not count: it never shipped); i2 came
        # 25 days after d1, outside the link window: no successful deploy caused an incident
        assert value.detail["change_failure_rate"] == 0.0
        assert value.detail["failed_deployment_attempts"] == 1
        caused = incidents(
            ("i3", "availability", "2026-10-07T20:00Z", None, "2026-10-07T21:00Z", "d3"))
        value = dora.deployment_frequency(self.DEPLOYS, caused, OCT, NOV)
        # DevLake: 1 successful deploy (d3) linked to an incident / 3 successful deploys
        assert value.detail["change_failure_rate"] == pytest.approx(1 / 3, abs=1e-4)

    def test_a_commit_of_a_first_deployment_is_never_counted_again(self) -> None:
        again = pd.concat([self.DEPLOYS, deployments(
            ("d6", "api", "production", "success", "2026-10-09T12:00Z", "a1 c4"))])
        value = dora.lead_time_hours(again, self.COMMITS, OCT, NOV)
        # a1 first shipped in d0 (excluded); c4 ships first in d6: 2026-10-08T00:00 → 10-09
        # 12:00 = 36 h. Changes: c1 10 h, c2 24 h, c3 6 h, c4 36 h → median (10 + 24) / 2
        assert value.value == 17.0 and value.detail["changes"] == 4

    def test_short_shas_resolve_by_unique_prefix(self) -> None:
        commits = pd.DataFrame({"sha": ["aaaaaaa111", "aaaaaaa222", "bbbbbbb333", "ccccccc444"],
                                "authored": [t("2026-10-01T00:00")] * 4})
        deploys = deployments(
            ("f", "api", "production", "success", "2026-09-01T00:00Z", ""),
            ("g", "api", "production", "success", "2026-10-02T00:00Z",
             "bbbbbbb aaaaaaa CCCCCCC444 ddddddd"))
        value = dora.lead_time_hours(deploys, commits, OCT, NOV)
        # bbbbbbb → bbbbbbb333 and CCCCCCC444 (case aside): 24 h each; aaaaaaa is ambiguous
        # and ddddddd unknown: both counted as unknown, never silently gone
        assert value.value == 24.0 and value.detail["changes"] == 2
        assert value.detail["unknown_commits"] == 2

    def test_mttr_mean_with_median_and_recovery_beside(self) -> None:
        linked = incidents(
            ("i1", "availability", "2026-10-06T13:00Z", None, "2026-10-06T15:00Z", "d2"),
            ("i2", "availability", "2026-10-10T00:00Z", None, "2026-10-10T01:00Z", ""),
            ("i3", "availability", "2026-10-20T00:00Z", None, "2026-10-20T09:00Z", ""))
        value = dora.mttr_hours(linked, self.DEPLOYS, OCT, NOV)
        assert value.value == pytest.approx(4.0) and value.detail["median_hours"] == 2.0
        assert value.detail["failed_deployment_recovery_hours"] == 3.0  # d2 finished 12:00

    def test_no_incidents_is_green_not_missing(self) -> None:
        value = dora.mttr_hours(NO_INCIDENTS, self.DEPLOYS, OCT, NOV)
        assert value.value is None and value.missing is None and value.band == "green"
        security = dora.security_response_hours(NO_INCIDENTS, OCT, NOV)
        assert security.band == "green"

    def test_security_response_uses_containment(self) -> None:
        rows = incidents(
            ("s1", "security", "2026-10-02T00:00Z", "2026-10-02T00:30Z", "2026-10-03T00:00Z", ""),
            ("s2", "security", "2026-10-04T00:00Z", None, "2026-10-04T02:30Z", ""),
            ("a1", "availability", "2026-10-04T00:00Z", None, "2026-10-09T00:00Z", ""))
        assert dora.security_response_hours(rows, OCT, NOV).value == pytest.approx(1.5)


def staff(*rows: tuple[str, str, bool, str, str | None, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["person", "team", "tech", "hired", "exited",
                                        "hourly_rate"])
    frame["hired"] = pd.to_datetime(frame["hired"]).dt.date
    frame["exited"] = [date.fromisoformat(v) if isinstance(v, str) else None
                       for v in frame["exited"]]
    return frame


class TestPeople:
    # ana leaves on Oct 10 and is back on Oct 21; bo works all month; cy (sales) joins Oct 16
    STAFF = staff(("ana", "inference", True, "2025-01-01", "2026-10-10", 90.0),
                  ("ana", "inference", True, "2026-10-21", None, 95.0),
                  ("bo", "platform", True, "2024-06-01", None, 80.0),
                  ("cy", "sales", False, "2026-10-16", None, 60.0))

    def test_a_person_who_leaves_and_returns_counts_once_out_and_only_while_employed(
            self) -> None:
        # ana: Oct 1-10 and 21-31 = 21 days; bo 31; cy Oct 16-31 = 16 -> 68 / 31
        assert people.average_headcount(self.STAFF, OCT, NOV) == pytest.approx(68 / 31)
        assert people.average_headcount(self.STAFF, OCT, NOV, tech_only=True) == \
            pytest.approx(52 / 31)
        assert len(people.exits(self.STAFF, OCT, NOV)) == 1

    def test_attrition_is_scaled_to_a_quarter_with_replacement_cost(self) -> None:
        value = people.attrition_per_quarter(self.STAFF, OCT, NOV, replacement_share=0.5)
        assert value.value == pytest.approx(1 / (52 / 31) * (365.25 / 4) / 31)
        assert value.detail["replacement_cost"] == pytest.approx(90 * 1800 * 0.5)
        teams = people.attrition_per_quarter(self.STAFF, OCT, NOV, teams=("platform",))
        assert teams.value == 0.0

    def test_turnover_over_everyone(self) -> None:
        assert people.turnover(self.STAFF, OCT, NOV).value == pytest.approx(1 / (68 / 31))


def months(*rows: dict[str, float]) -> pd.DataFrame:
    base = {name: 0.0 for name in finance.FLOWS} | {
        "cash": 0.0, "receivables": 0.0, "accounts": 10.0, "mrr_start": 0.0,
        "customers_start": 10.0, "ebitda": None, "sales_cycle_days": None}
    frame = pd.DataFrame([base | row for row in rows])
    frame["month"] = [date.fromisoformat(str(m)) for m in frame["month"]]
    return frame


class TestFinance:
    FIN = months({"month": "2026-09-01", "revenue": 0.0, "cogs": 100.0},
                 {"month": "2026-10-01", "revenue": 3100.0, "cogs": 620.0,
                  "operating_cash_flow": -310.0, "cash": 6200.0, "receivables": 1000.0,
                  "mrr_start": 3000.0, "mrr_expansion": 300.0, "mrr_churned": 150.0,
                  "customers_lost": 1.0, "sales_marketing": 500.0, "customers_new": 2.0})

    def test_a_week_takes_its_share_of_the_month(self) -> None:
        week = finance.window(self.FIN, datetime(2026, 10, 5, tzinfo=UTC),
                              datetime(2026, 10, 12, tzinfo=UTC))
        assert week is not None and week.flows["revenue"] == pytest.approx(700.0)

    def test_a_month_outside_the_finance_rows_is_missing(self) -> None:
        assert finance.window(self.FIN, NOV, datetime(2026, 12, 1, tzinfo=UTC)) is None

    def test_zero_revenue_month_gives_notes_not_division_errors(self) -> None:
        september = finance.window(self.FIN, datetime(2026, 9, 1, tzinfo=UTC), OCT)
        october = finance.window(self.FIN, OCT, NOV)
        assert september is not None and october is not None
        assert finance.gross_margin(september).note == "no revenue"
        assert finance.revenue_growth(october, september).note == \
            "the previous period had no revenue"
        assert finance.gross_margin(october).value == pytest.approx(0.8)

    def test_runway_nrr_cac_and_the_missing_optional_columns(self) -> None:
        october = finance.window(self.FIN, OCT, NOV)
        assert october is not None
        # cash $6,200 / October's own burn $310 = 20 months (no 30.44-day rescaling)
        assert finance.cash_runway_months(october).value == 20.0
        # ARPA: October's revenue $3,100 / 10 accounts
        assert finance.arpa(october).value == 310.0
        assert finance.net_revenue_retention(october).value == pytest.approx(3150 / 3000)
        assert finance.cac(october).value == 250.0
        assert finance.churn_rate(october).value == 0.1
        assert finance.dso(october).value == pytest.approx(1000 / 3100 * 31)
        assert finance.ebitda(october).missing == "finance column ebitda"
        assert finance.sales_cycle_days(october).missing == "finance column sales_cycle_days"


class TestBurn:
    # a quarter: each month burns $30K and adds $2,000 MRR net (new 2,500, expansion 500,
    # contraction 200, churned 800); S&M $40K + R&D $20K a month
    Q = months(*({"month": m, "revenue": 20_000.0, "operating_cash_flow": -30_000.0,
                  "mrr_new": 2_500.0, "mrr_expansion": 500.0, "mrr_contraction": 200.0,
                  "mrr_churned": 800.0, "sales_marketing": 40_000.0,
                  "research_development": 20_000.0, "cash": 600_000.0}
                 for m in ("2026-07-01", "2026-08-01", "2026-09-01")))

    def test_burn_multiple_and_growth_efficiency_over_the_same_period(self) -> None:
        july = finance.window(self.Q, datetime(2026, 7, 1, tzinfo=UTC),
                              datetime(2026, 8, 1, tzinfo=UTC))
        quarter = finance.window(self.Q, datetime(2026, 7, 1, tzinfo=UTC), OCT)
        assert july is not None and quarter is not None
        # July: net burn $30,000 / net new ARR 12 × $2,000 = $24,000 → 1.25
        assert finance.burn_multiple(july).value == pytest.approx(1.25)
        # quarter: $90,000 / (12 × $6,000 = $72,000) → 1.25, the same company
        assert finance.burn_multiple(quarter).value == pytest.approx(1.25)
        # growth efficiency: $24,000 / ($40,000 + $20,000) = 0.4; quarter 72K / 180K = 0.4
        assert finance.growth_efficiency(july).value == pytest.approx(0.4)
        assert finance.growth_efficiency(quarter).value == pytest.approx(0.4)
        # runway: $600,000 / the quarter's $30,000 a month = 20 months
        assert finance.cash_runway_months(quarter).value == pytest.approx(20.0)
        assert quarter.months == 3.0

    def test_cash_flow_positive_has_no_burn_multiple(self) -> None:
        making_cash = self.Q.assign(operating_cash_flow=5_000.0)
        july = finance.window(making_cash, datetime(2026, 7, 1, tzinfo=UTC),
                              datetime(2026, 8, 1, tzinfo=UTC))
        assert july is not None
        value = finance.burn_multiple(july)
        assert value.value is None and value.note is not None and "no burn" in value.note


def items(*rows: tuple[str, str, str, str | None, float | None, str | None, float | None]
          ) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["id", "type", "created", "resolved", "points",
                                        "release", "hours_spent"])
    frame["created"] = pd.to_datetime(frame["created"], utc=True)
    frame["resolved"] = pd.to_datetime(frame["resolved"], utc=True)
    return frame


class TestWork:
    ITEMS = items(
        ("b1", "defect", "2026-09-20T00:00Z", "2026-10-03T00:00Z", 1.0, None, 4.0),
        ("b2", "defect", "2026-10-02T00:00Z", "2026-10-09T00:00Z", 1.0, None, 8.0),
        ("b3", "defect", "2026-10-02T00:00Z", None, 1.0, None, None),
        ("t1", "debt", "2026-06-01T00:00Z", "2026-10-15T00:00Z", 3.0, "r2", None),
        ("t2", "debt", "2026-06-01T00:00Z", None, 5.0, "r2", None),
        ("t3", "debt", "2026-06-01T00:00Z", "2026-09-15T00:00Z", 2.0, None, None),
        ("t4", "debt", "2026-10-10T00:00Z", "2026-10-12T00:00Z", 2.0, None, None),
        ("s1", "story", "2026-09-01T00:00Z", None, 8.0, "r2", None),
        ("i1", "idea", "2026-07-01T00:00Z", None, None, None, None),
        ("i2", "idea", "2026-07-01T00:00Z", None, None, None, None),
        ("i3", "idea", "2026-07-01T00:00Z", "2026-10-20T00:00Z", None, None, None))

    def test_cost_per_defect(self) -> None:
        value = work.cost_per_defect(self.ITEMS, pd.Series([90.0, 110.0, None]), OCT, NOV)
        assert value.value == pytest.approx((4 + 8) * 100 / 2)

    def test_debt_reduction(self) -> None:
        # open at Oct 1: t1, t2 (t3 closed in Sept, t4 created later); resolved in Oct: t1, t4
        assert work.debt_reduction(self.ITEMS, OCT, NOV).value == 1.0

    def test_burndown_forecast_against_the_target(self) -> None:
        releases = pd.DataFrame({"name": ["r1", "r2"], "target": [date(2026, 9, 1),
                                 date(2026, 11, 15)], "released": [date(2026, 9, 2), None]})
        value = work.burndown_days_late(self.ITEMS, releases, NOV)
        # remaining r2: t2 5 + s1 8 = 13 points; done Oct 4-31: b2 1 + t1 3 + t4 2 = 6
        # (b1 on Oct 3 is outside the 4 weeks); 13 / 1.5 per week = 60.7 -> 61 days after
        # Nov 1 = Jan 1, 47 days after the Nov 15 target
        assert value.value == 47 and value.detail["remaining_points"] == 13
        assert value.detail["forecast"] == "2027-01-01"

    def test_pipeline_and_coverage(self) -> None:
        assert work.pipeline_weeks(self.ITEMS, NOV).value == 2 * 8 / 1
        reports = pd.DataFrame({"source": ["api", "api", "web"], "taken": [
            t("2026-10-01"), t("2026-10-20"), t("2026-11-05")], "lines_valid": [100, 200, 50],
            "lines_covered": [50, 150, 50]})
        assert work.coverage(reports, NOV).value == 0.75


def events(*rows: tuple[str, str, str, dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame([{"event": e, "distinct_id": u, "happened": t(w), "feature": None,
                           "score": None, "success": None} | p for e, u, w, p in rows])
    return frame


class TestProduct:
    EVENTS = events(
        ("feature_deployed", "rel", "2026-09-15", {"feature": "agent"}),
        ("feature_engaged", "u1", "2026-10-02", {"feature": "chat"}),
        ("feature_engaged", "u1", "2026-10-03", {"feature": "agent"}),
        ("feature_engaged", "u2", "2026-10-03", {"feature": "chat"}),
        ("feature_engaged", "u3", "2026-10-03", {"feature": "chat"}),
        ("feature_engaged", "u4", "2026-10-03", {"feature": "agent"}),
        ("nps_submitted", "u1", "2026-10-04", {"score": 10}),
        ("nps_submitted", "u2", "2026-10-04", {"score": 9}),
        ("nps_submitted", "u3", "2026-10-04", {"score": 7}),
        ("nps_submitted", "u4", "2026-10-04", {"score": 3}),
        ("integration_attempted", "u1", "2026-10-05", {"success": True}),
        ("integration_attempted", "u1", "2026-10-06", {"success": False}))

    def test_adoption_nps_and_compatibility_from_events(self) -> None:
        assert product.adoption(self.EVENTS, OCT, NOV).value == 0.5
        assert product.nps(self.EVENTS, OCT, NOV).value == 25.0
        no_table = pd.DataFrame(columns=["attempted", "success"])
        assert product.compatibility(no_table, self.EVENTS, OCT, NOV).value == 0.5

    def test_attributable_revenue_follows_users_of_shipped_features(self) -> None:
        assert product.attributable_revenue(self.EVENTS, 1000.0, OCT, NOV).value == 500.0
        before_launch = self.EVENTS[self.EVENTS["event"] != "feature_deployed"]
        assert product.adoption(before_launch, OCT, NOV).note is not None


def hours(rows: list[tuple[str, str, int, int, float, dict[float, int]]]) -> serving.Hours:
    """(pod, hour, requests, failed, busy seconds, {ttft bound: count})."""
    frame = pd.DataFrame([{"pod": p, "hour": t(h), "requests": n, "ok": n - f, "failed": f,
                           "throttled": 0, "cancelled": 0, "input_tokens": 0,
                           "output_tokens": 0, "busy_seconds": b}
                          for p, h, n, f, b, _ in rows])
    ttft = np.zeros((len(rows), len(LATENCY_BOUNDS) + 1))
    for i, (*_, bins) in enumerate(rows):
        for bound, count in bins.items():
            ttft[i, LATENCY_BOUNDS.index(bound)] = count
    return serving.Hours(frame, ttft, ttft.copy())


class TestServing:
    def test_quantile_interpolates_inside_a_bin_like_histogram_quantile(self) -> None:
        bins = np.zeros(len(LATENCY_BOUNDS) + 1)
        bins[LATENCY_BOUNDS.index(0.5)] = 10  # all in (0.4, 0.5]
        assert serving.quantile(bins, 0.5) == pytest.approx(0.45)

    def test_scalability_peak_within_slo_over_median(self) -> None:
        table = hours([("a", "2026-10-01T00:00", 10, 0, 0, {0.1: 10}),
                       ("a", "2026-10-01T01:00", 20, 0, 0, {0.1: 20}),
                       ("b", "2026-10-01T01:00", 20, 0, 0, {0.2: 20}),  # fleet hour 1: 40
                       ("a", "2026-10-01T02:00", 90, 0, 0, {5.0: 90}),  # too slow
                       ("a", "2026-10-01T03:00", 30, 3, 0, {0.1: 30})])  # 10 % failed
        value = serving.scalability_index(table, 2.0)
        assert value.value == pytest.approx(40 / 35)  # median of 10, 40, 90, 30 = 35

    def test_utilization_counts_gpus_and_inventory_time(self) -> None:
        table = hours([("a", "2026-10-01T00:00", 1, 0, 1800.0, {}),
                       ("a", "2026-10-01T01:00", 1, 0, 3600.0, {}),
                       ("x", "2026-10-01T01:00", 1, 0, 3600.0, {})])  # no inventory: unpriced
        gpus = pd.DataFrame({"pod": ["a"], "gpu_count": [2], "dollars_per_gpu_hour": [2.0],
                             "valid_from": [t("2026-10-01")],
                             "valid_to": [t("2026-10-01T04:00")]})
        snaps = pd.DataFrame({"kv_cache_usage": [0.5, 0.7]})
        value = serving.utilization(table, gpus, snaps, OCT, NOV)
        assert value.value == pytest.approx((5400 * 2) / (4 * 3600 * 2))
        assert value.detail["mean_kv_cache_usage"] == 0.6

    def test_uptime_from_readings_else_requests(self) -> None:
        snaps = pd.DataFrame({"up": [True, True, True, False]})
        assert serving.uptime(snaps, serving.no_hours(), OCT, NOV).value == 0.75
        table = hours([("a", "2026-10-01T00:00", 100, 2, 0, {})])
        assert serving.uptime(snaps.iloc[:0], table, OCT, NOV).value == 0.98
        # 100 requests: 2 server failures, 3 answered 429, 5 cancelled by the client
        table.frame.loc[0, ["throttled", "cancelled", "ok"]] = [3, 5, 90]
        # (95 − 2) / 95 not cancelled; with 429s counted (95 − 5) / 95
        assert serving.uptime(snaps.iloc[:0], table, OCT, NOV).value == pytest.approx(93 / 95)
        assert serving.uptime(snaps.iloc[:0], table, OCT, NOV, True).value == pytest.approx(
            90 / 95)
