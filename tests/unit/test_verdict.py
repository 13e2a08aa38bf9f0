"""The first screen's verdict line, on a hand-made three-row report."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from app import verdict
from app.data import CostPoint, CostView
from kpi_mapping.mappings import by_id
from kpi_mapping.periods import period_containing
from kpi_mapping.report import Correlation, Report, Row
from kpi_mapping.values import Value

NOVEMBER = period_containing("month", date(2026, 11, 1))


def row(mapping_id: int, band: str | None, history: list[float | None]) -> Row:
    change = None if None in history[-2:] else history[-1] - history[-2]  # type: ignore[operator]
    return Row(by_id(mapping_id), Value(1.0), Value(history[-1]), band, None, change, None,
               Correlation(None, None, 0), [1.0] * len(history), history)


REPORT = Report(NOVEMBER, ["2026-10", "2026-11"], [
    row(2, "amber", [0.50, 0.60]),  # utilization 50 % -> 60 %: +20 % relative
    row(10, "green", [4.0, 1.0]),  # MTTR 4 h -> 1 h: -75 % relative, lower is better
    row(13, "red", [0.40, 0.42]),  # TTFT p95 0.40 s -> 0.42 s: +5 % relative, lower is better
    row(5, None, [None, None]),  # no burndown: no band, no move
])


def test_band_counts_count_each_band_once() -> None:
    assert verdict.band_counts(REPORT) == {"red": 1, "amber": 1, "green": 1, "none": 1}


def test_movers_rank_by_relative_change_and_say_whether_it_is_better() -> None:
    moved = verdict.movers(REPORT)
    assert [(m.name, m.change, m.better) for m in moved] == [
        ("MTTR", "-3.0 h", True),  # 75 % relative
        ("Cloud resource utilization", "+10.0 pp", None),  # 20 %; judged "within" a band
        ("Response time", "+0.020 s", False)]  # 5 %


def view(bill: float, idle: float, projected: float | None = None) -> CostView:
    empty = pd.DataFrame()
    return CostView(NOVEMBER, bill, idle, None, 0.0, 0.0, 0, 0, {}, empty, empty, empty, empty,
                    "fully_loaded", projected_bill=projected)


def test_bill_line_compares_with_the_previous_period_and_shows_the_idle_share() -> None:
    # (2,304 − 2,224) / 2,224 = +3.6 %; 763 / 2,304 = 33.1 % idle
    assert verdict.bill_line(view(2304.0, 763.0), CostPoint(NOVEMBER, 2224.0, 1000.0, ())) == \
        "GPU bill $2,304 (+3.6 % vs $2,224), 33.1 % of it idle"
    assert verdict.bill_line(view(100.0, 25.0), None) == "GPU bill $100, 25.0 % of it idle"
    assert verdict.bill_line(None, None) is None
    # a running month 10 days in: $800 so far, 800 × 30 / 10 = $2,400 at this rate
    assert verdict.bill_line(view(800.0, 200.0, 2400.0), CostPoint(NOVEMBER, 2304.0, 0.0, ())
                             ) == ("GPU bill so far $800 (25.0 % of it idle); at this rate"
                                   " $2,400 for the whole month, against $2,304 for the"
                                   " previous one")


def test_as_of_says_when_and_whether_the_period_is_partial() -> None:
    latest = datetime(2026, 12, 3, 14, 5, tzinfo=UTC)
    assert verdict.as_of_line(latest, False) == "as of 2026-12-03 14:05 UTC"
    assert verdict.as_of_line(latest, True).endswith("still running: figures are partial")


def test_a_live_budget_tile_never_shows_a_negative_percentage() -> None:
    from app.config import LiveQuery
    from app.live import LiveValue
    from app.serving_section import live_text

    budget = LiveQuery("Least SLO budget left", "bottomk(1, x)", "budget", name_by="slo")
    # remaining −1.5 = 1 − spent, so 2.5× the budget is spent
    assert live_text(LiveValue(budget, -1.5, names="ttft")) == "0 % (2.5× spent)"
    assert live_text(LiveValue(budget, 0.82)) == "82.00 %"
    assert live_text(LiveValue(budget, None, "no series yet")) == "-"
