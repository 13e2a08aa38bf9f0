"""The first screen's verdict: how many KPIs are red / amber / green, what moved most since
the previous period, and the GPU bill beside the previous one with its idle share. Plain
functions of a KPI report and two cost views, so the sentences are tested without a page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.data import CostPoint, CostView
from kpi_mapping.report import Report, percent, show

BANDS = ("red", "amber", "green")


@dataclass(frozen=True)
class Mover:
    name: str
    change: str  # the change in the metric's unit, signed
    better: bool | None  # None: the mapping has no better direction


def band_counts(report: Report) -> dict[str, int]:
    counts = dict.fromkeys((*BANDS, "none"), 0)
    for row in report.rows:
        counts[row.band if row.band in BANDS else "none"] += 1
    return counts


def movers(report: Report, count: int = 3) -> list[Mover]:
    """The CTO metrics that changed most since the previous period, relative to where they
    were (a metric at 0 before moves by its change in full)."""
    ranked = []
    for row in report.rows:
        history = row.cto_history
        now, before = (history[-1], history[-2]) if len(history) > 1 else (None, None)
        if now is None or before is None or row.cto_change in (None, 0):
            continue
        relative = abs(now - before) / abs(before) if before else float("inf")
        better = {"higher": now > before, "lower": now < before}.get(row.mapping.better)
        ranked.append((relative, Mover(row.mapping.cto_metric,
                                       show(row.cto_change, row.mapping.cto_unit, signed=True),
                                       better)))
    ranked.sort(key=lambda item: -item[0])
    return [mover for _relative, mover in ranked[:count]]


def bill_line(now: CostView | None, before: CostPoint | None) -> str | None:
    if now is None or not now.bill:
        return None
    text = f"GPU bill ${now.bill:,.0f}"
    if now.projected_bill is not None:
        return (f"GPU bill so far ${now.bill:,.0f} ({percent(now.idle / now.bill, 1)} of it"
                f" idle); at this rate ${now.projected_bill:,.0f} for the whole"
                f" {now.period.kind}" + (f", against ${before.bill:,.0f} for the previous one"
                                          if before is not None else ""))
    if before is not None and before.bill:
        change = percent((now.bill - before.bill) / before.bill, 1, signed=True)
        text += f" ({change} vs ${before.bill:,.0f})"
    return text + f", {percent(now.idle / now.bill, 1)} of it idle"


def as_of_line(latest: datetime | None, running: bool) -> str:
    stamp = f"{latest:%Y-%m-%d %H:%M} UTC" if latest is not None else "no data yet"
    return f"as of {stamp}" + (" · the period is still running: figures are partial"
                               if running else "")
