"""What a formula returns: a number, or the input that is missing, or why there is none."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Value:
    value: float | None
    missing: str | None = None  # an input the store does not hold: "import X" fixes it
    note: str | None = None  # inputs are there but give no number (no incidents, no burn)
    band: str | None = None  # a band known without a number (no incidents: green)
    detail: dict[str, float | int | str | None] = field(default_factory=dict)


def number(value: float, **detail: float | int | str | None) -> Value:
    return Value(float(value), detail=detail)


def missing(what: str) -> Value:
    return Value(None, missing=what)


def none(note: str, band: str | None = None, **detail: float | int | str | None) -> Value:
    return Value(None, note=note, band=band, detail=detail)


def ratio(top: float, bottom: float, note: str, **detail: float | int | str | None) -> Value:
    """top / bottom, or a note saying why the bottom is zero."""
    return number(top / bottom, **detail) if bottom else Value(None, note=note, detail=detail)


# Value.detail key of a figure that is monthly whatever the period (finance in a week view):
# the month it is the figure of. Two periods on the same month have no change between them.
MONTHLY = "monthly_figure_of"
