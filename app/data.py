"""What the page shows, read from the store: periods, the KPI report, cost and serving health.

Plain functions of a `Store` returning frames and small dataclasses; no Streamlit here, so the
numbers can be tested without a page. The only writes are to the store's period cache
(derived figures of closed periods, kpi_mapping/period_cache.py), never to its data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from collectors import rollup
from collectors.store import Store, StoreUnreachableError
from kpi_mapping import config as kpi_config
from kpi_mapping import cost_report, inputs, period_cache, report
from kpi_mapping import health as health_mod
from kpi_mapping.config import KpiConfig
from kpi_mapping.cost import (
    NANO_COLUMNS,
    Allocation,
    NoGpuInventoryError,
    by,
    by_role,
    fleet_per_million,
    margin_by_tenant,
    over_hours,
    per_million_tokens,
)
from kpi_mapping.data import choices, latest_data
from kpi_mapping.health import Health
from kpi_mapping.money import NANO_PER_DOLLAR
from kpi_mapping.periods import KINDS, Period, period_containing
from kpi_mapping.report import Report, history
from kpi_mapping.slo import SloStatus
from specs.slo import Slo

PICKER_PERIODS = 12
GPU_IMPORT = inputs.SOURCES["gpus"][1]
LEDGER_IMPORT = inputs.SOURCES["ledger"][1]
REVENUE_IMPORT = inputs.SOURCES["tenant-revenue"][1]


class StoreError(ValueError):
    """The store cannot be read at all (missing file, not an llmkpi store)."""


def open_store(url: str) -> Store:
    """Open without migrating or creating anything: the page reads (and keeps derived figures
    in the period cache, which migration 0006 created)."""
    try:
        return Store.open_existing(url, migrate=False)
    except StoreUnreachableError as problem:
        raise StoreError(str(problem)) from None


__all__ = ["choices", "latest_data"]  # the page reads them from here


# --- periods ---------------------------------------------------------------------------------

def periods(kind: str, latest: datetime | None, count: int = PICKER_PERIODS
            ) -> tuple[list[Period], int]:
    """The last `count` periods up to the one holding the newest data (newest first), and
    the index of the default: the newest complete one (a period still running is offered,
    not chosen)."""
    anchor = latest or datetime.now(UTC)
    newest = period_containing(kind, anchor.date())
    out = history(newest, count)[::-1]
    complete = newest.end <= anchor + timedelta(days=1)
    return out, 0 if complete else 1


def running(period: Period, now: datetime | None = None) -> bool:
    """Whether the period has not ended yet (by the clock): its figures are partial."""
    return (now or datetime.now(UTC)) < period.end


def kpi_config_for(path: str | None, throttled: bool = False) -> KpiConfig:
    """The page's KPI config: the file's (or the defaults), with the SLO config's 429 switch
    (the page and `warm` build it the same way, so their cache entries are the same)."""
    loaded = kpi_config.load(Path(path)) if path else KpiConfig()
    return replace(loaded, throttled_is_failure=throttled)


def warm(store: Store, config: KpiConfig, slos: Sequence[Slo],
         throttled_is_failure: bool = False, say: Callable[[str], None] | None = None) -> int:
    """Keep in the store's period cache what the picker's closed periods show (the KPI
    history, cost points, serving health with no filter), so the first visitor's period
    switches read instead of compute. Returns how many periods it looked at."""
    latest = latest_data(store)
    looked = 0
    for kind in KINDS:
        offered, _default = periods(kind, latest)
        closed = [p for p in offered if period_cache.closed(p)]
        if not closed:
            continue
        for period in (closed[0], closed[-1]):  # their spans cover every offered period
            report.read(store, period, config)
        for period in closed:
            priced(store, period)
        cost_points(store, closed)
        for period in closed:
            serving(store, period, Filters(), slos, throttled_is_failure)
        looked += len(closed)
        if say:
            say(f"kept the {kind} views of {closed[-1].label} to {closed[0].label}")
    return looked


# --- the KPI report --------------------------------------------------------------------------

def kpi_report(store: Store, period: Period, config: KpiConfig) -> Report:
    """The 19 mappings for the period and its history, from what is rolled up already."""
    return report.read(store, period, config)


def pending_rollup(store: Store) -> int:
    return rollup.pending(store)


# --- cost ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    tenants: tuple[str, ...] = ()  # empty: every tenant
    models: tuple[str, ...] = ()  # empty: every model

    def active(self) -> bool:
        return bool(self.tenants or self.models)


@dataclass(frozen=True)
class CostView:
    period: Period
    bill: float  # the whole fleet's GPU bill; idle is not anyone's, so filters leave both
    idle: float
    utilization: float | None  # busy GPU-seconds / provisioned GPU-seconds (KPI 2's rule)
    spent: float  # busy-time cost of the filtered requests
    spent_loaded: float  # their fully loaded cost (idle shared by busy-time cost)
    requests: int
    unpriced: int
    fleet_per_million: dict[str, float | None]  # fully_loaded, busy_time: whole selection
    models: pd.DataFrame  # name, {loaded,busy}_{input,output,blended}_per_m, cost, tokens
    tenants: pd.DataFrame  # name, cost (busy-time), loaded_cost, requests, tokens
    features: pd.DataFrame
    margin: pd.DataFrame  # tenant, revenue, gpu_cost, margin, basis, both bases beside
    margin_basis: str
    revenue_note: str | None = None  # how monthly revenue was prorated to the period
    projected_bill: float | None = None  # a running period: its bill so far, at this rate
    # P/D disaggregation: the fleet's bill by the pods' role (kpi_mapping.cost.by_role);
    # empty when no pod has one. Pods' bills are the fleet's: filters leave them
    roles: pd.DataFrame = field(default_factory=pd.DataFrame)


def _filtered(allocation: Allocation, filters: Filters) -> Allocation:
    requests = allocation.usage
    mask = pd.Series(True, index=requests.index)
    keys: dict[str, tuple[str, ...]] = {}
    if filters.tenants:
        mask &= requests["tenant"].isin(filters.tenants)
        keys["tenant"] = filters.tenants
    if filters.models:
        mask &= requests["model"].isin(filters.models)
        keys["model"] = filters.models
    return allocation.subset(mask, keys) if keys else allocation


def _dollars(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    out = frame.rename(columns={key: "name"}).copy()
    out["cost"] = out["cents"].astype("float64") / 100
    out["loaded_cost"] = out["loaded_cents"].astype("float64") / 100
    dropped = [c for c in out.columns if c.endswith("_cents") or c.endswith("_nano")
               or c in ("cents",)]
    return out.drop(columns=dropped).sort_values("loaded_cost", ascending=False,
                                                 ignore_index=True)


@dataclass(frozen=True)
class Priced:
    """A period's whole allocation and its revenue per tenant: filters are applied later,
    so changing them never allocates the bill again."""

    period: Period
    allocation: Allocation
    revenue: pd.DataFrame


def priced(store: Store, period: Period) -> Priced | None:
    """The period's GPU bill allocated to its requests; None when no GPU inventory is
    imported (any other problem is raised: it is not an empty state). A closed period's
    allocation is kept in the store's period cache summed over hours (`over_hours`: every
    figure the page shows of it is a grouping by pod, tenant, feature or model, unchanged)."""
    found = period_cache.lookup_texts(store, "priced", [period], COST_KEY)
    if period.start in found:
        doc = json.loads(found[period.start])
        return None if doc is None else _priced_from(period, doc)
    try:
        allocation, revenue = cost_report.compute(store, period)
    except NoGpuInventoryError:
        period_cache.keep_texts(store, "priced", {period: "null"}, COST_KEY)
        return None
    made = Priced(period, allocation, revenue)
    if period_cache.closed(period):
        period_cache.keep_texts(store, "priced", {period: _priced_doc(made)}, COST_KEY)
    return made


def _records(frame: pd.DataFrame) -> list[list[Any]]:
    return [[None if pd.isna(v) else v.item() if hasattr(v, "item") else
             v.isoformat() if hasattr(v, "isoformat") else v for v in row]
            for row in frame.itertuples(index=False, name=None)]


def _priced_doc(whole: Priced) -> str:
    kept = over_hours(whole.allocation)
    return json.dumps({
        "usage": {"columns": list(kept.usage.columns), "rows": _records(kept.usage)},
        "pods": {"columns": list(kept.pods.columns), "rows": _records(kept.pods)},
        "revenue": {"columns": list(whole.revenue.columns),
                    "rows": _records(whole.revenue)},
        "allocated_cents": kept.allocated_cents, "bill_cents": kept.bill_cents})


def _priced_from(period: Period, doc: dict[str, Any]) -> Priced:
    usage = pd.DataFrame(doc["usage"]["rows"], columns=doc["usage"]["columns"])
    for name in NANO_COLUMNS:
        usage[name] = usage[name].astype("Int64")
    pods = pd.DataFrame(doc["pods"]["rows"], columns=doc["pods"]["columns"])
    revenue = pd.DataFrame(doc["revenue"]["rows"], columns=doc["revenue"]["columns"])
    if "month" in revenue:
        revenue["month"] = pd.to_datetime(revenue["month"]).dt.date
    return Priced(period, Allocation(usage, pods, int(doc["allocated_cents"]),
                                     int(doc["bill_cents"])), revenue)


def cost(whole: Priced | None, filters: Filters,
         margin_basis: str = "fully_loaded") -> CostView | None:
    """The period's GPU cost and where it went, for the selected tenants and models."""
    if whole is None:
        return None
    full, revenue = whole.allocation, whole.revenue
    allocation = _filtered(full, filters)
    models = per_million_tokens(allocation)
    models["tokens"] = models["input_tokens"] + models["output_tokens"]
    margin = pd.DataFrame(columns=["tenant", "revenue", "gpu_cost", "margin", "basis"])
    if not revenue.empty:
        if filters.tenants:
            revenue = revenue[revenue["tenant"].isin(filters.tenants)]
        margin = margin_by_tenant(allocation, revenue, margin_basis)
    billed = cost_report.billed_until(whole.period)
    projected = None
    if billed < whole.period.end and billed > whole.period.start:
        projected = full.bill_cents / 100 * (whole.period.end - whole.period.start) / (
            billed - whole.period.start)
    return CostView(
        revenue_note=_prorated(whole.revenue, whole.period), projected_bill=projected,
        period=whole.period, bill=full.bill_cents / 100, idle=full.idle_cents / 100,
        utilization=cost_report.utilization(full),
        spent=allocation.allocated_cents / 100, spent_loaded=allocation.bill_cents / 100,
        requests=allocation.requests, unpriced=int(allocation.unpriced["requests"].sum()),
        fleet_per_million=fleet_per_million(allocation),
        models=_dollars(models, "model"), tenants=_dollars(by(allocation, "tenant"), "tenant"),
        features=_dollars(by(allocation, "feature"), "feature"), margin=margin,
        margin_basis=margin_basis,
        roles=by_role(full) if (full.pods["role"] != "").any() else pd.DataFrame())


COST_KINDS = ("input", "output", "blended")


def _prorated(revenue: pd.DataFrame, period: Period) -> str | None:
    """What the margin's revenue is when a month's revenue was cut to the period."""
    if revenue.empty or "share" not in revenue or (revenue["share"] >= 1).all():
        return None
    parts = []
    for month, share in revenue.groupby("month", sort=True)["share"].first().items():
        stamp = pd.Timestamp(str(month))
        days = stamp.days_in_month
        parts.append(f"{round(share * days)} of {days} days of {stamp:%Y-%m}")
    missing = period.end.date() > (pd.Timestamp(max(revenue["month"]))
                                   + pd.offsets.MonthBegin(1)).date()
    return ("tenant revenue is monthly: prorated by days to " + ", ".join(parts)
            + ("; later days have no revenue imported yet" if missing else ""))


# cached points are valid for this module's code and kpi_mapping's (an upgrade recomputes)
COST_KEY = hashlib.sha256((period_cache.CODE + Path(__file__).read_text(encoding="utf-8")
                           ).encode()).hexdigest()


@dataclass(frozen=True)
class CostPoint:
    """What a period contributes to the cost-over-time chart and the verdict: the fleet's
    bill and idle part, and per (tenant, model) the fully loaded nano-dollars and tokens,
    so a tenant or model filter sums the chosen groups instead of allocating again (the
    same sums `per_million_tokens` takes over the selection's rows)."""

    period: Period
    bill: float
    idle: float
    groups: tuple[tuple[str, str, int, int, int, int], ...]  # tenant, model, loaded input /
    # output nano-dollars, input / output tokens


def point(whole: Priced) -> CostPoint:
    allocation = whole.allocation
    table = by(allocation, ["tenant", "model"])
    groups = tuple((str(r["tenant"]), str(r["model"]), int(r["loaded_input_nano"]),
                    int(r["loaded_output_nano"]), int(r["input_tokens"]),
                    int(r["output_tokens"])) for r in table.to_dict("records"))
    return CostPoint(whole.period, allocation.bill_cents / 100, allocation.idle_cents / 100,
                     groups)


def per_million(item: CostPoint, filters: Filters) -> list[tuple[str, str, float]]:
    """(model, kind, fully loaded $ per million tokens) over the chosen groups."""
    sums: dict[str, list[int]] = {}
    for tenant, model, li, lo, ti, to in item.groups:
        if (filters.tenants and tenant not in filters.tenants) or (
                filters.models and model not in filters.models):
            continue
        total = sums.setdefault(model, [0, 0, 0, 0])
        for i, amount in enumerate((li, lo, ti, to)):
            total[i] += amount
    out = []
    for model, (li, lo, ti, to) in sorted(sums.items()):
        for kind, nano, tokens in (("input", li, ti), ("output", lo, to),
                                   ("blended", li + lo, ti + to)):
            if tokens:
                out.append((model, kind, nano / NANO_PER_DOLLAR / tokens * 1e6))
    return out


def cost_points(store: Store, periods: Sequence[Period]) -> list[CostPoint | None]:
    """The cost point of each period: closed ones from the store's period cache while valid
    (kpi_mapping/period_cache.py), the rest allocated (and kept once closed)."""
    found = period_cache.lookup_texts(store, "cost", periods, COST_KEY)
    out: list[CostPoint | None] = []
    fresh: dict[Period, str] = {}
    for period in periods:
        if period.start in found:
            doc = json.loads(found[period.start])
            out.append(None if doc is None else CostPoint(
                period, doc["bill"], doc["idle"], tuple(tuple(g) for g in doc["groups"])))
            continue
        whole = priced(store, period)
        made = None if whole is None else point(whole)
        out.append(made)
        fresh[period] = json.dumps(None if made is None else {
            "bill": made.bill, "idle": made.idle, "groups": made.groups})
    period_cache.keep_texts(store, "cost", fresh, COST_KEY)
    return out


def cost_history(points: Sequence[CostPoint | None], filters: Filters = Filters()
                 ) -> pd.DataFrame:
    """Fully loaded $ per million tokens per period, model and kind (input / output /
    blended) for the selection: the bill, idle included, over the tokens served."""
    rows = [{"period": p.period.label, "start": p.period.start, "model": model, "kind": kind,
             "dollars_per_million": value}
            for p in points if p is not None for model, kind, value in per_million(p, filters)]
    return pd.DataFrame(rows, columns=["period", "start", "model", "kind",
                                       "dollars_per_million"])


# --- serving health (computed in kpi_mapping.health; the page presents it) ------------------

ServingView = Health


def serving(store: Store, period: Period, filters: Filters, slos: Sequence[Slo],
            throttled_is_failure: bool = False) -> Health:
    """The period's serving health; each SLO over its window ending at the period's end, or
    at the newest data while the period is still running. A closed period with no filter
    comes from the store's period cache while it is valid."""
    cache_key = hashlib.sha256(f"{COST_KEY}|{slos!r}|{throttled_is_failure}".encode()
                               ).hexdigest()
    if not filters.active():
        found = period_cache.lookup_texts(store, "serving", [period], cache_key)
        if period.start in found:
            return _health_from(json.loads(found[period.start]), slos)
    latest = latest_data(store)
    end = period.end if latest is None else min(period.end, latest + timedelta(seconds=1))
    rows = health_mod.requests(store, health_mod.window_start(period, end, slos), end,
                               filters.tenants, filters.models)
    result = health_mod.health(rows, period, slos, throttled_is_failure, end)
    if not filters.active() and end >= period.end:
        period_cache.keep_texts(store, "serving", {period: _health_doc(result)}, cache_key)
    return result


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _health_doc(item: Health) -> str:
    daily = [{"day": pd.Timestamp(r["day"]).isoformat(), "ttft_p95": r["ttft_p95"],
              "itl_p95": r["itl_p95"], "requests": int(r["requests"])}
             for r in item.daily.to_dict("records")]
    statuses = [{"events": s.events, "bad": s.bad, "achieved": s.achieved,
                 "budget_remaining": s.budget_remaining, "spent": s.spent,
                 "exhausted_on": _stamp(s.exhausted_on),
                 "window_start": _stamp(s.window_start), "window_end": _stamp(s.window_end)}
                for s in item.slos]
    return json.dumps({"requests": item.requests, "failed": item.failed,
                       "ttft_p95": item.ttft_p95, "itl_p95": item.itl_p95, "daily": daily,
                       "slos": statuses})


def _health_from(doc: dict[str, Any], slos: Sequence[Slo]) -> Health:
    def when(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text)

    daily = pd.DataFrame(doc["daily"], columns=["day", "ttft_p95", "itl_p95", "requests"])
    daily["day"] = pd.to_datetime(daily["day"], utc=True)
    statuses = [SloStatus(slo, s["events"], s["bad"], s["achieved"], s["budget_remaining"],
                          s["spent"], when(s["exhausted_on"]), when(s["window_start"]),
                          when(s["window_end"])) for slo, s in zip(slos, doc["slos"],
                                                                  strict=True)]
    return Health(doc["requests"], doc["failed"], doc["ttft_p95"], doc["itl_p95"], daily,
                  statuses)
