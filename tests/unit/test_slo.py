"""SLOs judged on the ledger's usage roll-up (kpi_mapping/slo.py) by the SLI definitions of
specs/slo.py, over their own window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from collectors import usage
from collectors.usage import gap_counts
from kpi_mapping import slo as slo_eval
from specs.slo import Slo, slo

STATUS = {"ok": 200, "error": 503, "cancelled": 499, "rejected": 400}
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def ledger(*items: tuple[str, float | None, float | None, int | None],
           hour: int = 0) -> pd.DataFrame:
    frame = pd.DataFrame(items, columns=["outcome", "time_to_first_token",
                                         "mean_inter_token_latency", "output_tokens"])
    frame["http_status"] = frame["outcome"].map(STATUS)
    frame["arrival"] = pd.Timestamp(T0 + timedelta(hours=hour))
    frame["e2e_latency"] = 1.0
    for name, value in (("pod", "p"), ("tenant", "t"), ("feature", "f"), ("model", "m")):
        frame[name] = value
    return frame


def rows(*items: tuple[str, float | None, float | None, int | None]) -> slo_eval.Usage:
    return slo_eval.Usage.of(usage.from_ledger(ledger(*items))[1])


@pytest.mark.parametrize(("target", "frame", "events", "bad", "remaining"), [
    pytest.param(slo("a", "availability", 0.9),
                 rows(*[("ok", 0.1, 0.01, 5)] * 18, ("error", None, None, None),
                      ("cancelled", 0.1, 0.01, 2)),
                 19, 1, 1 - (1 / 19) / 0.1, id="availability-ignores-cancelled"),
    pytest.param(slo("a", "availability", 0.99),
                 rows(("ok", 0.1, 0.01, 5), ("error", None, None, None)),
                 2, 1, 0.0, id="overspent-stops-at-zero"),
    pytest.param(slo("a", "availability", 0.9),
                 rows(*[("ok", 0.1, 0.01, 5)] * 7, ("rejected", None, None, None),
                      ("error", None, None, None), ("rejected", None, None, None)),
                 10, 1, 1 - (1 / 10) / 0.1, id="a-client-4xx-is-not-downtime"),
    pytest.param(slo("t", "ttft", 0.5, 0.5),
                 rows(("ok", 0.4, 0.01, 5), ("ok", 0.6, 0.01, 5), ("error", None, None, None)),
                 2, 1, 0.0, id="ttft-counts-requests-with-a-first-token"),
    pytest.param(slo("i", "itl", 0.5, 0.05),
                 rows(("ok", 0.1, 0.04, 11), ("ok", 0.1, 0.08, 31), ("ok", 0.1, None, None)),
                 40, 30, 0.0, id="itl-weighs-each-request-by-its-gaps"),  # 1.5× over
])
def test_status(target: Slo, frame: pd.DataFrame, events: float, bad: float,
                    remaining: float) -> None:
    judged = slo_eval.status(frame, target)
    assert (judged.events, judged.bad) == (events, bad)
    assert judged.achieved == pytest.approx(1 - bad / events)
    assert judged.budget_remaining == pytest.approx(remaining)
    # spent: the bad share over the allowed share (1 − remaining while it lasts)
    assert judged.spent == pytest.approx(
        (bad / events) / target.default.error_budget)


def test_an_overspent_budget_says_when_it_ran_out_and_how_many_times_over() -> None:
    target = slo("a", "availability", 0.99)  # 1 % of 300 requests = 3 may fail
    frame = pd.concat([
        ledger(*[("ok", 0.1, 0.01, 5)] * 98, ("error", None, None, None),
               ("error", None, None, None), hour=0),                      # 2 bad: 2 of 3
        ledger(*[("ok", 0.1, 0.01, 5)] * 99, ("error", None, None, None), hour=1),  # 3 of 3
        ledger(*[("ok", 0.1, 0.01, 5)] * 97, *[("error", None, None, None)] * 3,
               hour=2)])                                                   # 6: past it
    judged = slo_eval.status(slo_eval.Usage.of(usage.from_ledger(frame)[1]), target)
    # 6 bad of 300 = 2 % against 1 % allowed: 2× over, nothing left, gone in hour 2
    assert judged.spent == pytest.approx(2.0) and judged.budget_remaining == 0.0
    assert judged.overspent and judged.exhausted_on == T0 + timedelta(hours=2)


def test_the_window_is_the_slo_period_ending_at_the_end_given() -> None:
    target = slo("a", "availability", 0.9)  # a 30-day window
    old = ledger(("error", None, None, None), hour=-24 * 31)  # 31 days before: outside
    now = ledger(("ok", 0.1, 0.01, 5), ("ok", 0.1, 0.01, 5), hour=0)
    rows_ = slo_eval.Usage.of(usage.from_ledger(pd.concat([old, now]))[1])
    judged = slo_eval.status(rows_, target, end=T0 + timedelta(hours=1))
    assert (judged.events, judged.bad) == (2, 0)
    assert judged.window_start == T0 + timedelta(hours=1) - timedelta(days=30)
    assert slo_eval.status(rows_, target).bad == 1  # without an end: every row given


def test_itl_is_judged_per_gap_from_the_ledger_bins() -> None:
    frame = ledger(("ok", 0.1, 0.03, 5), ("ok", 0.1, 0.03, 5))
    # first request: its 4 gaps were 10, 10, 10 and 90 ms (mean 30 ms); the second's mean
    # only is known (30 ms): by the bins 1 of 8 gaps is over 50 ms, not 0 as by the means
    frame["itl_counts"] = [gap_counts([0.01, 0.01, 0.01, 0.09]), None]
    judged = slo_eval.status(slo_eval.Usage.of(usage.from_ledger(frame)[1]),
                             slo("i", "itl", 0.5, 0.05))
    assert (judged.events, judged.bad) == (8, 1)


def test_429_counts_only_when_configured() -> None:
    raw = ledger(("ok", 0.1, 0.01, 5), ("ok", 0.1, 0.01, 5), ("rejected", None, None, None),
                 ("rejected", None, None, None))
    raw.loc[3, "http_status"] = 429
    frame = slo_eval.Usage.of(usage.from_ledger(raw)[1])
    target = slo("a", "availability", 0.9)
    assert slo_eval.status(frame, target).bad == 0  # a 400 and a 429: neither by default
    assert slo_eval.status(frame, target, throttled_is_failure=True).bad == 1  # the 429


def test_no_events_means_no_verdict() -> None:
    judged = slo_eval.status(rows(("cancelled", 0.1, 0.01, 5)), slo("a", "availability", 0.9))
    assert judged.achieved is None and judged.budget_remaining is None


