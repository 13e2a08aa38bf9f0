"""`llmkpi cost report / export` on a store holding the demo company, on both databases."""

from __future__ import annotations

import csv
import re
import subprocess
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from collectors.demo_company.load import load
from collectors.store import Store
from collectors.tables import TenantRevenue
from kpi_mapping import cost_report
from kpi_mapping.cost_report import export_focus, format_table, report
from kpi_mapping.data import tenant_revenue
from kpi_mapping.periods import parse_period
from llmkpi.demo_data import make
from tests.integration.store_fixtures import write_pd_fleet
from tests.integration.test_store import ROOT

pytestmark = pytest.mark.integration


def test_report_and_focus_export_add_up_to_the_bill(store: Store, tmp_path: Path) -> None:
    company = make(tmp_path / "company", 3, 5, date(2026, 10, 1), base_per_day=30,
                   raw_days=None)
    load(store, company, say=lambda _line: None)
    period = parse_period("month", "2026-10")
    doc = report(store, period)
    # October: H100 all month at $2.49 after the price cut (month 3 of 3 → cut in month 2),
    # L4 from month 3 at $0.71: 744 h each, 744 × 2.49 = 1,852.56 + 744 × 0.71 = 528.24
    assert doc["gpu_bill"] == pytest.approx(1852.56 + 528.24)
    assert doc["allocated"] + doc["idle"] == pytest.approx(doc["gpu_bill"], abs=1e-9)
    assert sum(t["cents"] for t in doc["tenants"]) == round(doc["allocated"] * 100)
    assert doc["unpriced_requests"] == 0 and doc["requests"] > 500
    assert 0 < doc["utilization"] < 1
    assert {m["model"] for m in doc["models"]} == {"meta-llama/Meta-Llama-3-8B-Instruct",
                                                   "meta-llama/Llama-3.2-3B-Instruct"}
    assert all(row["margin"] < 1 for row in doc["margin"])
    text = format_table(doc)
    assert "idle" in text and "tenant-0000" in text and "margin" in text

    out = tmp_path / "focus.csv"
    rows = export_focus(store, period, out)
    with out.open() as handle:
        focus = list(csv.DictReader(handle))
    assert len(focus) == rows
    assert sum(Decimal(r["BilledCost"]) for r in focus) == Decimal(str(doc["gpu_bill"]))
    idle = [r for r in focus if r["ChargeDescription"] == "idle GPU time"]
    assert {r["ResourceId"] for r in idle} == {"vllm-0", "vllm-1"}
    assert sum(int(r["ConsumedQuantity"]) for r in focus) == sum(
        t["input_tokens"] + t["output_tokens"] for t in doc["tenants"])


def test_cost_command_errors_are_one_line(tmp_path: Path) -> None:
    cli = str(ROOT / ".venv" / "bin" / "llmkpi")
    database = str(tmp_path / "empty.sqlite")
    subprocess.run([cli, "db", "upgrade", "--database", database], check=True,
                   capture_output=True)  # an empty store: reading commands create none
    for args, message in [
        (["report", "--at", "2026-10"], "no GPU inventory in the store"),
        (["report", "--period", "year", "--at", "2026"], "--period 'year': choose one of"),
        (["report", "--period", "quarter", "--at", "2026-Q5"], "is not a quarter"),
        (["export", "--at", "2026-10"], "cost export needs --focus FILE"),
    ]:
        done = subprocess.run([cli, "cost", *args, "--database", database],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert message in done.stderr, done.stderr


def test_tenant_revenue_of_a_week_is_prorated_by_days(store: Store) -> None:
    with store.session() as session:
        store.insert_ignore(session, TenantRevenue, [
            {"month": date(2026, 10, 1), "tenant": "a", "revenue": 310.0},
            {"month": date(2026, 11, 1), "tenant": "a", "revenue": 300.0}])
        session.commit()
    week = parse_period("week", "2026-W44")  # Mon Oct 26 - Sun Nov 1
    revenue = tenant_revenue(store, week.start, week.end)
    # October: 6 of 31 days, 310 × 6 / 31 = 60.00; November: 1 of 30 days, 300 / 30 = 10.00
    assert revenue[["tenant", "revenue"]].round(6).values.tolist() == [["a", 60.0],
                                                                        ["a", 10.0]]
    month = parse_period("month", "2026-10")
    assert tenant_revenue(store, month.start, month.end)["revenue"].tolist() == [310.0]


def test_the_report_by_role_on_a_pd_fleet(store: Store) -> None:
    """The hand-computed P/D fleet of tests/unit/test_cost_roles.py through the store."""
    write_pd_fleet(store)
    doc = cost_report.report(store, parse_period("month", "2026-10"))
    assert doc["requests"] == 2  # not 4: the prefill pod's rows are prefills
    roles = {row["role"]: row for row in doc["roles"]}
    # each pod's bill 3,600 ¢; prefill used 1 ¢ ($36 × 1.0 s / 3600), decode 15 ¢ (15.2)
    assert {r: (row["bill_cents"], row["allocated_cents"], row["tokens"])
            for r, row in roles.items()} == {"prefill": (3600, 1, 1500),
                                             "decode": (3600, 15, 300)}
    (model,) = doc["models"]
    assert (model["input_tokens"], model["output_tokens"]) == (1500, 300)
    table = cost_report.format_table(doc)
    assert "by role (P/D disaggregation)" in table
    # the prefill pod's $36 over 1,500 prompt tokens: $24,000 per million
    assert re.search(r"^prefill\s+1\s+\$36\.00\s+\$35\.99 .* 1,500\s+24000\.000",
                     table, re.M), table
    rows = cost_report.focus_rows(cost_report.compute(store, parse_period(
        "month", "2026-10"))[0], parse_period("month", "2026-10"))
    prefill = [r for r in rows
               if r["ResourceId"] == "pf" and r["ChargeDescription"] != "idle GPU time"]
    assert {r["ChargeDescription"] for r in prefill} == {"GPU time, prefill"}
    assert sum(int(r["ConsumedQuantity"]) for r in prefill) == 1500
