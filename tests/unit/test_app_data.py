"""The executive view's own arithmetic: SLO budgets from ledger rows, the period picker."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from app.config import LiveQuery, PageConfig, SloTarget
from app.data import periods, slo_status

STATUS = {"ok": 200, "error": 503, "cancelled": 499, "rejected": 400}


def rows(*items: tuple[str, float | None, float | None, int | None]) -> pd.DataFrame:
    frame = pd.DataFrame(items, columns=["outcome", "time_to_first_token",
                                         "mean_inter_token_latency", "output_tokens"])
    frame["http_status"] = frame["outcome"].map(STATUS)
    return frame


@pytest.mark.parametrize(("target", "frame", "events", "bad", "remaining"), [
    pytest.param(SloTarget("a", "availability", 0.9),
                 rows(*[("ok", 0.1, 0.01, 5)] * 18, ("error", None, None, None),
                      ("cancelled", 0.1, 0.01, 2)),
                 19, 1, 1 - (1 / 19) / 0.1, id="availability-ignores-cancelled"),
    pytest.param(SloTarget("a", "availability", 0.99),
                 rows(("ok", 0.1, 0.01, 5), ("error", None, None, None)),
                 2, 1, 1 - 0.5 / 0.01, id="overspent-goes-below-zero"),
    pytest.param(SloTarget("a", "availability", 0.9),
                 rows(*[("ok", 0.1, 0.01, 5)] * 7, ("rejected", None, None, None),
                      ("error", None, None, None), ("rejected", None, None, None)),
                 10, 1, 1 - (1 / 10) / 0.1, id="a-client-4xx-is-not-downtime"),
    pytest.param(SloTarget("t", "ttft", 0.5, 0.5),
                 rows(("ok", 0.4, 0.01, 5), ("ok", 0.6, 0.01, 5), ("error", None, None, None)),
                 2, 1, 0.0, id="ttft-counts-requests-with-a-first-token"),
    pytest.param(SloTarget("i", "itl", 0.5, 0.05),
                 rows(("ok", 0.1, 0.04, 11), ("ok", 0.1, 0.08, 31), ("ok", 0.1, None, None)),
                 40, 30, 1 - 0.75 / 0.5, id="itl-weighs-each-request-by-its-gaps"),
])
def test_slo_status(target: SloTarget, frame: pd.DataFrame, events: float, bad: float,
                    remaining: float) -> None:
    status = slo_status(frame, target)
    assert (status.events, status.bad) == (events, bad)
    assert status.achieved == pytest.approx(1 - bad / events)
    assert status.budget_remaining == pytest.approx(remaining)


def test_429_counts_only_when_configured() -> None:
    frame = rows(("ok", 0.1, 0.01, 5), ("ok", 0.1, 0.01, 5), ("rejected", None, None, None),
                 ("rejected", None, None, None))
    frame.loc[3, "http_status"] = 429
    target = SloTarget("a", "availability", 0.9)
    assert slo_status(frame, target).bad == 0  # a 400 and a 429: neither by default
    assert slo_status(frame, target, throttled_is_failure=True).bad == 1  # the 429


def test_no_events_means_no_verdict() -> None:
    status = slo_status(rows(("cancelled", 0.1, 0.01, 5)), SloTarget("a", "availability", 0.9))
    assert status.achieved is None and status.budget_remaining is None


@pytest.mark.parametrize(("kind", "latest", "listed", "default"), [
    ("month", datetime(2026, 11, 23, 9, tzinfo=UTC), "2026-11", "2026-10"),
    ("month", datetime(2026, 10, 31, 23, tzinfo=UTC), "2026-10", "2026-10"),
    ("week", datetime(2026, 11, 23, 9, tzinfo=UTC), "2026-W48", "2026-W47"),
    ("quarter", datetime(2026, 10, 31, 23, tzinfo=UTC), "2026-Q4", "2026-Q3"),
])
def test_picker_offers_the_running_period_but_chooses_the_newest_complete_one(
        kind: str, latest: datetime, listed: str, default: str) -> None:
    offered, index = periods(kind, latest)
    assert offered[0].label == listed and offered[index].label == default
    assert len(offered) == 12 and all(older.end == newer.start
                                   for older, newer in zip(offered[1:], offered, strict=False))


def test_page_config_round_trips_through_json() -> None:
    config = PageConfig("x.sqlite", "kpi.yaml", "http://p:9090",
                        (SloTarget("ttft", "ttft", 0.99, 0.5),),
                        (LiveQuery("TTFT", "up", "seconds"),), history=4)
    assert PageConfig.from_json(config.to_json()) == config
