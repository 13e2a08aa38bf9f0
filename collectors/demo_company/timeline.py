"""The demo company's shared facts: months, tenants, headcount plan, the outage. Every other
part of the generator reads these, so finance, people, traffic and incidents tell one story."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def days_in(month: date) -> int:
    return (add_months(month, 1) - month).days


def at(day: date, hour: float = 0.0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour)


@dataclass(frozen=True)
class Outage:
    """The month's big incident: a bad deploy of the inference service takes serving down."""

    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


@dataclass
class Timeline:
    months: list[date]
    seed: int
    tenants: list[str]
    tenant_weight: dict[str, float]
    outage: Outage
    growth: list[float] = field(default_factory=list)  # traffic multiplier per month

    @property
    def start(self) -> datetime:
        return at(self.months[0])

    @property
    def end(self) -> datetime:
        return at(add_months(self.months[-1], 1))

    def month_index(self, moment: datetime) -> int:
        return (moment.year - self.months[0].year) * 12 + moment.month - self.months[0].month


def build_timeline(months: int, seed: int, end_month: date, tenants: list[str]) -> Timeline:
    if months < 2:
        raise ValueError("--months must be at least 2 (trends need a previous period)")
    rng = random.Random(seed)
    first = add_months(month_start(end_month), -(months - 1))
    month_list = [add_months(first, i) for i in range(months)]
    weights = [1.0 / (i + 1) ** 1.1 for i in range(len(tenants))]  # a few big tenants
    total = sum(weights)
    outage_month = month_list[months // 2]
    start = at(outage_month, 24 * 11 + 14 + rng.random() * 4)
    outage = Outage(start, start + timedelta(hours=2 + rng.random() * 2))
    growth = [1.0]
    for _ in month_list[1:]:
        growth.append(growth[-1] * (1.04 + rng.random() * 0.08))
    return Timeline(month_list, seed, tenants, {t: w / total for t, w in zip(tenants, weights,
                                                                                 strict=True)},
                    outage, growth)
