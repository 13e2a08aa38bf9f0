"""`llmkpi cost report` and `llmkpi cost export --focus`: one period's GPU cost, from the store."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd

from collectors.store import Store
from kpi_mapping import data
from kpi_mapping.cost import Allocation, allocate, by, margin_by_tenant, per_million_tokens
from kpi_mapping.periods import Period

FOCUS_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart",
                 "ChargePeriodEnd", "ChargeCategory", "ChargeDescription", "BillingCurrency",
                 "BilledCost", "EffectiveCost", "ConsumedQuantity", "ConsumedUnit",
                 "PricingUnit", "ResourceId", "ResourceType", "ServiceName", "x_Tenant",
                 "x_Model", "x_Feature", "x_Requests")


def compute(store: Store, period: Period) -> tuple[Allocation, pd.DataFrame]:
    ledger = data.ledger(store, period.start, period.end)
    gpus = data.gpus(store)
    if gpus.empty:
        raise ValueError("no GPU inventory in the store: `llmkpi import gpus FILE` first"
                         " (docs/imports.md)")
    revenue = data.tenant_revenue(store, period.start, period.end)
    return allocate(ledger, gpus, period.start, period.end), revenue


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): (None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
             for k, v in row.items()} for row in frame.to_dict("records")]


def report(store: Store, period: Period) -> dict[str, Any]:
    allocation, revenue = compute(store, period)
    pods = allocation.pods
    unpriced = allocation.requests["cents"].isna()
    return {
        "period": period.label, "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "gpu_bill": allocation.bill_cents / 100, "idle": allocation.idle_cents / 100,
        "allocated": int(pods["allocated_cents"].sum()) / 100,
        "utilization": float(pods["busy_s"].sum() / pods["provisioned_s"].sum())
        if pods["provisioned_s"].sum() else None,
        "requests": len(allocation.requests), "unpriced_requests": int(unpriced.sum()),
        "unpriced_pods": sorted(set(allocation.requests.loc[unpriced, "pod"])),
        "pods": _records(pods),
        "models": _records(per_million_tokens(allocation)),
        "tenants": _records(by(allocation, "tenant")),
        "features": _records(by(allocation, "feature")),
        "margin": _records(margin_by_tenant(allocation, revenue)) if not revenue.empty else [],
    }


def _money(cents: float) -> str:
    return f"${cents / 100:,.2f}"


def format_table(doc: dict[str, Any]) -> str:
    util = doc["utilization"]
    lines = [f"GPU cost {doc['period']}: bill ${doc['gpu_bill']:,.2f} = allocated"
             f" ${doc['allocated']:,.2f} + idle ${doc['idle']:,.2f}; busy"
             f" {util * 100:.1f} % of provisioned GPU time" if util is not None else
             f"GPU cost {doc['period']}: no GPU provisioned in the period",
             f"{doc['requests']} requests"
             + (f", {doc['unpriced_requests']} on pods with no price: "
                + ", ".join(map(str, doc["unpriced_pods"])) if doc["unpriced_requests"] else ""),
             "", f"{'model':<40} {'$/M in':>9} {'$/M out':>9} {'$/M all':>9} {'cost':>11}"]
    for m in doc["models"]:
        def rate(value: float | None) -> str:
            return f"{value:9.3f}" if value is not None else f"{'-':>9}"
        lines.append(f"{str(m['model'])[:40]:<40} {rate(m['input_per_m'])} "
                     f"{rate(m['output_per_m'])} {rate(m['blended_per_m'])}"
                     f" {_money(m['cents']):>11}")
    for title, key in (("tenant", "tenants"), ("feature", "features")):
        lines += ["", f"{title:<24} {'requests':>9} {'tokens in':>12} {'tokens out':>12}"
                  f" {'cost':>11}"]
        for row in sorted(doc[key], key=lambda r: -r["cents"]):
            lines.append(f"{str(row[title])[:24]:<24} {row['requests']:>9}"
                         f" {row['input_tokens']:>12,} {row['output_tokens']:>12,}"
                         f" {_money(row['cents']):>11}")
    if doc["margin"]:
        lines += ["", f"{'tenant':<24} {'revenue':>13} {'GPU cost':>11} {'margin':>8}"]
        for row in doc["margin"]:
            margin = f"{row['margin'] * 100:7.2f}%" if row["margin"] is not None else "      -"
            lines.append(f"{row['tenant']:<24} ${row['revenue']:>12,.2f}"
                         f" {_money(row['gpu_cost'] * 100):>11} {margin}")
    else:
        lines += ["", "margin per tenant: no revenue per tenant in the period"
                  " (`llmkpi import tenant-revenue FILE`)"]
    return "\n".join(lines)


def export_focus(store: Store, period: Period, out: Path) -> int:
    """FOCUS-shaped rows: one per pod, tenant, model and feature, and one idle row per pod."""
    allocation, _revenue = compute(store, period)
    priced = allocation.requests[allocation.requests["cents"].notna()].copy()
    priced["tokens"] = priced["prompt_tokens"].fillna(0) + priced["output_tokens"].fillna(0)
    groups = priced.groupby(["pod", "tenant", "model", "feature"], sort=True).agg(
        cents=("cents", "sum"), tokens=("tokens", "sum"), requests=("cents", "size")
    ).reset_index()
    common = {"BillingPeriodStart": period.start.isoformat(),
              "BillingPeriodEnd": period.end.isoformat(),
              "ChargePeriodStart": period.start.isoformat(),
              "ChargePeriodEnd": period.end.isoformat(), "BillingCurrency": "USD",
              "ResourceType": "GPU", "ServiceName": "LLM inference", "ConsumedUnit": "Tokens",
              "PricingUnit": "tokens"}
    rows = []
    for row in groups.to_dict("records"):
        cost = f"{int(row['cents']) / 100:.2f}"
        rows.append(common | {"ChargeCategory": "Usage", "ChargeDescription": "GPU time",
                              "BilledCost": cost, "EffectiveCost": cost,
                              "ConsumedQuantity": int(row["tokens"]), "ResourceId": row["pod"],
                              "x_Tenant": row["tenant"], "x_Model": row["model"],
                              "x_Feature": row["feature"],
                              "x_Requests": int(row["requests"])})
    for pod in allocation.pods.to_dict("records"):
        cost = f"{int(pod['idle_cents']) / 100:.2f}"
        rows.append(common | {"ChargeCategory": "Usage", "ChargeDescription": "idle GPU time",
                              "BilledCost": cost, "EffectiveCost": cost, "ConsumedQuantity": 0,
                              "ResourceId": pod["pod"], "x_Tenant": "", "x_Model": "",
                              "x_Feature": "", "x_Requests": 0})
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(FOCUS_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
