"""SLOs judged on ledger rows (kpi_mapping/slo.py) by the SLI definitions of specs/slo.py."""

from __future__ import annotations

import pandas as pd
import pytest

from kpi_mapping import slo as slo_eval
from specs.slo import Slo, slo

STATUS = {"ok": 200, "error": 503, "cancelled": 499, "rejected": 400}


def rows(*items: tuple[str, float | None, float | None, int | None]) -> pd.DataFrame:
    frame = pd.DataFrame(items, columns=["outcome", "time_to_first_token",
                                         "mean_inter_token_latency", "output_tokens"])
    frame["http_status"] = frame["outcome"].map(STATUS)
    return frame


@pytest.mark.parametrize(("target", "frame", "events", "bad", "remaining"), [
    pytest.param(slo("a", "availability", 0.9),
                 rows(*[("ok", 0.1, 0.01, 5)] * 18, ("error", None, None, None),
                      ("cancelled", 0.1, 0.01, 2)),
                 19, 1, 1 - (1 / 19) / 0.1, id="availability-ignores-cancelled"),
    pytest.param(slo("a", "availability", 0.99),
                 rows(("ok", 0.1, 0.01, 5), ("error", None, None, None)),
                 2, 1, 1 - 0.5 / 0.01, id="overspent-goes-below-zero"),
    pytest.param(slo("a", "availability", 0.9),
                 rows(*[("ok", 0.1, 0.01, 5)] * 7, ("rejected", None, None, None),
                      ("error", None, None, None), ("rejected", None, None, None)),
                 10, 1, 1 - (1 / 10) / 0.1, id="a-client-4xx-is-not-downtime"),
    pytest.param(slo("t", "ttft", 0.5, 0.5),
                 rows(("ok", 0.4, 0.01, 5), ("ok", 0.6, 0.01, 5), ("error", None, None, None)),
                 2, 1, 0.0, id="ttft-counts-requests-with-a-first-token"),
    pytest.param(slo("i", "itl", 0.5, 0.05),
                 rows(("ok", 0.1, 0.04, 11), ("ok", 0.1, 0.08, 31), ("ok", 0.1, None, None)),
                 40, 30, 1 - 0.75 / 0.5, id="itl-weighs-each-request-by-its-gaps"),
])
def test_status(target: Slo, frame: pd.DataFrame, events: float, bad: float,
                    remaining: float) -> None:
    judged = slo_eval.status(frame, target)
    assert (judged.events, judged.bad) == (events, bad)
    assert judged.achieved == pytest.approx(1 - bad / events)
    assert judged.budget_remaining == pytest.approx(remaining)


def test_429_counts_only_when_configured() -> None:
    frame = rows(("ok", 0.1, 0.01, 5), ("ok", 0.1, 0.01, 5), ("rejected", None, None, None),
                 ("rejected", None, None, None))
    frame.loc[3, "http_status"] = 429
    target = slo("a", "availability", 0.9)
    assert slo_eval.status(frame, target).bad == 0  # a 400 and a 429: neither by default
    assert slo_eval.status(frame, target, throttled_is_failure=True).bad == 1  # the 429


def test_no_events_means_no_verdict() -> None:
    judged = slo_eval.status(rows(("cancelled", 0.1, 0.01, 5)), slo("a", "availability", 0.9))
    assert judged.achieved is None and judged.budget_remaining is None


