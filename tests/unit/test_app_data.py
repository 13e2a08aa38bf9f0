"""The executive view's own arithmetic: SLO budgets from ledger rows, the period picker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.config import LiveQuery, PageConfig
from app.data import periods
from specs.slo import slo


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
                        (slo("ttft", "ttft", 0.99, 0.5),),
                        (LiveQuery("TTFT", "up", "seconds"),), history=4)
    assert PageConfig.from_json(config.to_json()) == config
