"""Reporting periods and their previous period."""

from datetime import UTC, datetime

import pytest

from kpi_mapping.periods import parse_period


@pytest.mark.parametrize(("kind", "at", "label", "start", "end", "previous"), [
    ("month", "2026-10", "2026-10", (2026, 10, 1), (2026, 11, 1), "2026-09"),
    ("month", "2026-01-17", "2026-01", (2026, 1, 1), (2026, 2, 1), "2025-12"),
    ("quarter", "2026-Q4", "2026-Q4", (2026, 10, 1), (2027, 1, 1), "2026-Q3"),
    ("quarter", "2026-02-03", "2026-Q1", (2026, 1, 1), (2026, 4, 1), "2025-Q4"),
    ("week", "2026-W01", "2026-W01", (2025, 12, 29), (2026, 1, 5), "2025-W52"),
    ("week", "2026-10-07", "2026-W41", (2026, 10, 5), (2026, 10, 12), "2026-W40"),
])
def test_periods(kind: str, at: str, label: str, start: tuple[int, int, int],
                 end: tuple[int, int, int], previous: str) -> None:
    period = parse_period(kind, at)
    assert period.label == label
    assert period.start == datetime(*start, tzinfo=UTC)
    assert period.end == datetime(*end, tzinfo=UTC)
    assert period.previous().label == previous


@pytest.mark.parametrize(("kind", "at", "message"), [
    ("year", "2026", "--period 'year': choose one of week, month, quarter"),
    ("quarter", "2026-Q5", "--at '2026-Q5' is not a quarter"),
    ("month", "October", "--at 'October' is not a month"),
])
def test_bad_periods_say_what_is_wrong(kind: str, at: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_period(kind, at)
