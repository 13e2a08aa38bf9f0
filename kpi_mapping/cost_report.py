"""`llmkpi cost report` and `llmkpi cost export --focus`: one period's GPU cost, from the store."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from collectors.store import Store
from kpi_mapping import data
from kpi_mapping.cost import (
    NANO_COLUMNS,
    Allocation,
    NoGpuInventoryError,
    allocate_usage,
    by,
    by_role,
    fleet_per_million,
    margin_by_tenant,
    per_million_tokens,
)
from kpi_mapping.money import to_cents
from kpi_mapping.periods import Period

FOCUS_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
                 "ChargePeriodEnd", "ChargeCategory", "ChargeDescription", "BillingCurrency",
                 "BilledCost", "EffectiveCost", "ConsumedQuantity", "ConsumedUnit",
                 "PricingUnit", "ResourceId", "ResourceType", "ServiceName", "x_Tenant",
                 "x_Model", "x_Feature", "x_Requests")


def billed_until(period: Period, now: datetime | None = None) -> datetime:
    """Where a period's bill ends: its end, or now while it runs (GPUs not yet provisioned
    are not billed yet)."""
    clock = now or datetime.now(UTC)
    return period.end if period.end <= clock else max(period.start, clock.replace(
        minute=0, second=0, microsecond=0))


def compute(store: Store, period: Period) -> tuple[Allocation, pd.DataFrame]:
    """The period's allocation from the roll-up (up to the current hour while it runs) and
    its revenue per tenant; NoGpuInventoryError without prices."""
    gpus = data.gpus(store)
    if gpus.empty:
        raise NoGpuInventoryError
    end = billed_until(period)
    rows = data.usage(store, period.start, end, bins=False)
    busy = data.pod_hours(store, period.start, end)
    revenue = data.tenant_revenue(store, period.start, period.end)
    return allocate_usage(rows, busy, gpus, period.start, end), revenue


def utilization(allocation: Allocation) -> float | None:
    """busy GPU-seconds / provisioned GPU-seconds (KPI 2's definition)."""
    provisioned = float(allocation.pods["provisioned_gpu_s"].sum())
    return float(allocation.pods["busy_gpu_s"].sum()) / provisioned if provisioned else None


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): (None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
             for k, v in row.items()} for row in frame.to_dict("records")]


def report(store: Store, period: Period, margin_basis: str = "fully_loaded") -> dict[str, Any]:
    allocation, revenue = compute(store, period)
    pods = allocation.pods
    unpriced = allocation.unpriced
    models = per_million_tokens(allocation).drop(columns=list(NANO_COLUMNS))
    return {
        "period": period.label, "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "gpu_bill": allocation.bill_cents / 100, "idle": allocation.idle_cents / 100,
        "allocated": allocation.allocated_cents / 100,
        "utilization": utilization(allocation),
        "per_million_tokens": fleet_per_million(allocation),
        "requests": allocation.requests, "unpriced_requests": int(unpriced["requests"].sum()),
        "unpriced_pods": sorted(set(unpriced["pod"])),
        "pods": _records(pods),
        "models": _records(models),
        "tenants": _records(by(allocation, "tenant").drop(columns=list(NANO_COLUMNS))),
        "features": _records(by(allocation, "feature").drop(columns=list(NANO_COLUMNS))),
        "margin_basis": margin_basis,
        "margin": _records(margin_by_tenant(allocation, revenue, margin_basis))
        if not revenue.empty else [],
        # P/D disaggregation: the bill by role, once any pod has one
        "roles": _records(by_role(allocation)) if (pods["role"] != "").any() else [],
    }


def _money(cents: float) -> str:
    return f"${cents / 100:,.2f}"


def _rate(value: float | None) -> str:
    return f"{value:9.3f}" if value is not None and not pd.isna(value) else f"{'-':>9}"


def format_table(doc: dict[str, Any]) -> str:
    util, fleet = doc["utilization"], doc["per_million_tokens"]
    lines = [f"GPU cost {doc['period']}: bill ${doc['gpu_bill']:,.2f} = allocated"
             f" ${doc['allocated']:,.2f} + idle ${doc['idle']:,.2f}; busy"
             f" {util * 100:.1f} % of provisioned GPU time" if util is not None else
             f"GPU cost {doc['period']}: no GPU provisioned in the period",
             f"{doc['requests']:,} requests"
             + (f", {doc['unpriced_requests']:,} on pods with no price: "
                + ", ".join(map(str, doc["unpriced_pods"])) if doc["unpriced_requests"] else ""),
             f"$ per million tokens: fully loaded ${_rate(fleet['fully_loaded']).strip()}"
             f" (bill ÷ tokens), busy-time ${_rate(fleet['busy_time']).strip()}"
             " (allocated ÷ tokens)",
             "", f"{'':<32} {'$/M fully loaded':^29}  {'$/M busy-time':^29}",
             f"{'model':<32} {'input':>9} {'output':>9} {'blended':>9}  {'input':>9}"
             f" {'output':>9} {'blended':>9} {'cost loaded':>12}"]
    for m in doc["models"]:
        lines.append(f"{str(m['model'])[:32]:<32} {_rate(m['loaded_input_per_m'])}"
                     f" {_rate(m['loaded_output_per_m'])} {_rate(m['loaded_blended_per_m'])}"
                     f"  {_rate(m['busy_input_per_m'])} {_rate(m['busy_output_per_m'])}"
                     f" {_rate(m['busy_blended_per_m'])} {_money(m['loaded_cents']):>12}")
    for title, key in (("tenant", "tenants"), ("feature", "features")):
        lines += ["", f"{title:<24} {'requests':>9} {'tokens in':>12} {'tokens out':>12}"
                  f" {'busy-time':>11} {'loaded':>11}"]
        for row in sorted(doc[key], key=lambda r: -r["cents"]):
            lines.append(f"{str(row[title])[:24]:<24} {row['requests']:>9,}"
                         f" {row['input_tokens']:>12,} {row['output_tokens']:>12,}"
                         f" {_money(row['cents']):>11} {_money(row['loaded_cents']):>11}")
    if doc.get("roles"):
        lines += ["", "by role (P/D disaggregation): each role's bill per token of its work —"
                  " prefill per prompt token prefilled, decode per output token",
                  f"{'role':<18} {'pods':>4} {'bill':>11} {'idle':>11} {'busy':>7}"
                  f" {'requests':>9} {'prefills':>9} {'tokens':>12} {'$/M':>10}"
                  f" {'queue/req':>9}"]
        for row in doc["roles"]:
            busy = row["busy_gpu_s"] / row["provisioned_gpu_s"] * 100 \
                if row["provisioned_gpu_s"] else 0.0
            per_m = f"{row['per_m_tokens']:10.3f}" if row["per_m_tokens"] is not None \
                else f"{'-':>10}"
            queue = f"{row['queue_s_per_request']:8.3f}s" \
                if row["queue_s_per_request"] is not None else f"{'-':>9}"
            lines.append(f"{row['name']:<18} {row['pods']:>4} {_money(row['bill_cents']):>11}"
                         f" {_money(row['idle_cents']):>11} {busy:6.1f}%"
                         f" {row['requests']:>9,} {row['prefills']:>9,} {row['tokens']:>12,}"
                         f" {per_m} {queue}")
        lines.append("queue/req on decode pods includes the wait for the KV transfer from the"
                     " prefill pod (the Disaggregated serving dashboard shows transfer time)")
    if doc["margin"]:
        basis = doc["margin_basis"].replace("_", " ")
        lines += ["", f"gross margin per tenant, {basis} (revenue − GPU cost) / revenue",
                  f"{'tenant':<24} {'revenue':>13} {'GPU cost':>11} {'margin':>8}"
                  f" {'busy-only':>10}"]
        for row in doc["margin"]:
            def pct(value: float | None) -> str:
                return f"{value * 100:7.2f}%" if value is not None else "      -"
            lines.append(f"{row['tenant']:<24} ${row['revenue']:>12,.2f}"
                         f" {_money(row['gpu_cost'] * 100):>11} {pct(row['margin'])}"
                         f"  {pct(row['margin_busy_time'])}")
    else:
        lines += ["", "margin per tenant: no revenue per tenant in the period"
                  " (`llmkpi import tenant-revenue FILE`)"]
    return "\n".join(lines)


def focus_rows(allocation: Allocation, period: Period) -> list[dict[str, Any]]:
    """FOCUS-shaped rows: per pod one usage row per (tenant, model, feature) and one idle
    row. Each pod's rows are rounded to the pod's bill by largest remainder, so the rows
    add up to every pod's bill and to the whole bill to the cent."""
    priced = allocation.priced.copy()
    # a prefill pod's rows carry only the prompt tokens it prefilled (counted once: the
    # decode pod's rows carry the request's tokens)
    priced["tokens"] = priced["input_tokens"] + priced["output_tokens"] + priced.get(
        "prefill_tokens", 0)
    priced["nano"] = priced["input_nano"] + priced["output_nano"]
    groups = priced.groupby(["pod", "tenant", "model", "feature"], sort=True).agg(
        nano=("nano", "sum"), tokens=("tokens", "sum"), requests=("requests", "sum")
    ).reset_index()
    common = {"BillingPeriodStart": period.start.isoformat(),
              "BillingPeriodEnd": period.end.isoformat(),
              "ChargePeriodStart": period.start.isoformat(),
              "ChargePeriodEnd": period.end.isoformat(), "BillingCurrency": "USD",
              "ResourceType": "GPU", "ServiceName": "LLM inference", "ConsumedUnit": "Tokens",
              "PricingUnit": "tokens"}
    rows = []
    for pod in allocation.pods.to_dict("records"):
        mine = groups[groups["pod"] == pod["pod"]]
        cents = to_cents(mine["nano"].to_numpy(dtype="int64"), int(pod["allocated_cents"]))
        what = f"GPU time, {pod['role']}" if pod.get("role") else "GPU time"
        for row, part in zip(mine.to_dict("records"), cents, strict=True):
            cost = f"{int(part) / 100:.2f}"
            rows.append(common | {"ChargeCategory": "Usage", "ChargeDescription": what,
                                  "BilledCost": cost, "EffectiveCost": cost,
                                  "ConsumedQuantity": int(row["tokens"]),
                                  "ResourceId": row["pod"], "x_Tenant": row["tenant"],
                                  "x_Model": row["model"], "x_Feature": row["feature"],
                                  "x_Requests": int(row["requests"])})
        cost = f"{int(pod['idle_cents']) / 100:.2f}"
        rows.append(common | {"ChargeCategory": "Usage", "ChargeDescription": "idle GPU time",
                              "BilledCost": cost, "EffectiveCost": cost, "ConsumedQuantity": 0,
                              "ResourceId": pod["pod"], "x_Tenant": "", "x_Model": "",
                              "x_Feature": "", "x_Requests": 0})
    return rows


def export_focus(store: Store, period: Period, out: Path) -> int:
    """Writes the period's FOCUS rows as CSV (whole: a temporary name, then rename)."""
    allocation, _revenue = compute(store, period)
    rows = focus_rows(allocation, period)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(FOCUS_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out)
    return len(rows)
