"""Reporting periods: `--period week|month|quarter --at 2026-W40 | 2026-10 | 2026-Q4`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

KINDS = ("week", "month", "quarter")


@dataclass(frozen=True)
class Period:
    kind: str
    start: datetime
    end: datetime
    label: str

    def previous(self) -> Period:
        return period_containing(self.kind, (self.start - timedelta(days=1)).date())


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month(year: int, month: int) -> date:
    return date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def period_containing(kind: str, day: date) -> Period:
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        return Period(kind, _utc(start), _utc(start + timedelta(days=7)), f"{year}-W{week:02d}")
    if kind == "month":
        start = day.replace(day=1)
        return Period(kind, _utc(start), _utc(_month(start.year, start.month + 1)),
                      f"{start:%Y-%m}")
    if kind == "quarter":
        first = (day.month - 1) // 3 * 3 + 1
        start = date(day.year, first, 1)
        return Period(kind, _utc(start), _utc(_month(day.year, first + 3)),
                      f"{day.year}-Q{(first - 1) // 3 + 1}")
    raise ValueError(f"--period {kind!r}: choose one of {', '.join(KINDS)}")


def parse_period(kind: str, at: str) -> Period:
    """`at` is a date inside the period, or the period's own label."""
    if kind not in KINDS:
        raise ValueError(f"--period {kind!r}: choose one of {', '.join(KINDS)}")
    text = at.strip().upper()
    try:
        if kind == "week" and "-W" in text:
            year, week = text.split("-W")
            return period_containing(kind, date.fromisocalendar(int(year), int(week), 1))
        if kind == "quarter" and "-Q" in text:
            year, quarter = text.split("-Q")
            if not 1 <= int(quarter) <= 4:
                raise ValueError
            return period_containing(kind, date(int(year), int(quarter) * 3 - 2, 1))
        if len(text) == 7:
            return period_containing(kind, date.fromisoformat(text + "-01"))
        return period_containing(kind, date.fromisoformat(text))
    except ValueError:
        raise ValueError(f"--at {at!r} is not a {kind} (like 2026-W40, 2026-10, 2026-Q4 or"
                         " a date)") from None
