"""Money in exact integer nano-dollars, rounded to cents only where a grouping is shown.

A request's prefill share is a few thousandths of a cent; rounding each request to whole
cents sends every such share to zero. So the allocator works in nano-dollars (int64 holds
nine billion dollars), and a grouping — tenant, feature, model, pod, FOCUS rows — is turned
into cents by largest remainder against a total fixed once, so every grouping adds up to
the same bill to the cent (FOCUS 1.x: BilledCost is reported at the currency's precision).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np

NANO_PER_DOLLAR = 10**9
NANO_PER_CENT = 10**7


def dollars_to_nano(dollars: Decimal) -> int:
    """An exact dollar amount to whole nano-dollars, half to even."""
    return int((dollars * NANO_PER_DOLLAR).to_integral_value(rounding=ROUND_HALF_EVEN))


def nano_to_cents(nano: int) -> int:
    """Whole cents, half to even (the rounding of one total, never of its parts)."""
    return int((Decimal(int(nano)) / NANO_PER_CENT).to_integral_value(rounding=ROUND_HALF_EVEN))


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Whole units proportional to weights, summing to total exactly (Hamilton's method).
    Ties in the remainder go to the earlier weight, so the result is deterministic."""
    count = len(weights)
    if count == 0:
        if total:
            raise ValueError(f"cannot split {total} over no parts")
        return np.zeros(0, dtype=np.int64)
    weights = np.asarray(weights, dtype="float64")
    weight_sum = float(weights.sum())
    if weight_sum <= 0:
        weights, weight_sum = np.ones(count), float(count)
    exact = weights / weight_sum * total
    floor = np.floor(exact).astype(np.int64)
    short = int(total - int(floor.sum()))
    if short > 0:
        floor[np.argsort(-(exact - floor), kind="stable")[:short]] += 1
    elif short < 0:  # float noise above the total: take back from the smallest remainders
        floor[np.argsort(exact - floor, kind="stable")[:-short]] -= 1
    return floor


def split_exact(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer parts of an integer total by weight. Below 2**52 units float64 holds every
    part within a unit, so largest remainder is exact; above (a regime over ~$4.5M in
    nano-dollars) the floors are taken in Python's exact integers."""
    count = len(weights)
    if count == 0 or total == 0:
        return np.zeros(count, dtype=np.int64)
    weights = np.asarray(weights, dtype="float64")
    weight_sum = float(weights.sum())
    if weight_sum <= 0 or not np.isfinite(weight_sum):
        weights, weight_sum = np.ones(count), float(count)
    if total < 2**52:
        return largest_remainder(total, weights)
    ints = [int(w) for w in weights / weights.max() * 2.0**52]
    whole = sum(ints)
    floor = [total * w // whole for w in ints]
    remainder = [total * w % whole for w in ints]
    short = total - sum(floor)
    for index in sorted(range(count), key=lambda i: (-remainder[i], i))[:short]:
        floor[index] += 1
    return np.array(floor, dtype=np.int64)


def to_cents(nano: np.ndarray, total_cents: int | None = None) -> np.ndarray:
    """Cents for each part of a grouping, adding to total_cents (default: the rounded sum)."""
    nano = np.asarray(nano, dtype=np.int64)
    if total_cents is None:
        total_cents = nano_to_cents(int(nano.sum()))
    if len(nano) == 0:
        return np.zeros(0, dtype=np.int64)
    # weights are the exact amounts: a part of 0 nano-dollars never wins a cent
    return split_exact(total_cents, nano.astype("float64")) if nano.sum() > 0 else \
        largest_remainder(total_cents, np.zeros(len(nano)))
