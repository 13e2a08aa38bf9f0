"""A small company's October, loaded through the importers, every figure computed by hand.

tests/data/reconciliation/ holds three pods (h100-a changes price on Oct 16; h100-b has two
GPUs; l4-x has no price), nine requests (two overlapping, a 5xx, a 400, a 429, a client
cancellation), a failed-then-fixed deploy after a first deploy, short SHAs, two coverage
snapshots of one codebase, two months of finance. Every expected value below is a literal;
the arithmetic is in the comment beside it, never the code under test.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app import data as page
from collectors.importers.base import run_import
from collectors.importers.git import GitImporter
from collectors.importers.ours import IMPORTERS
from collectors.store import Store
from kpi_mapping import cost_report
from kpi_mapping.config import KpiConfig
from kpi_mapping.periods import parse_period
from kpi_mapping.report import build
from llmkpi.commands.kpi import snapshot

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "data" / "reconciliation"
OCTOBER = parse_period("month", "2026-10")
COMMITS = {"c0": "2026-09-01T00:00:00Z", "c1": "2026-09-10T00:00:00Z",
           "c2": "2026-10-04T12:00:00Z", "c3": "2026-10-05T00:00:00Z",
           "c4": "2026-10-11T06:00:00Z"}


def _git(repo: Path, *args: str, when: str) -> str:
    env = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_NAME": "Ada",
           "GIT_AUTHOR_EMAIL": "ada@example.com", "GIT_COMMITTER_NAME": "Ada",
           "GIT_COMMITTER_EMAIL": "ada@example.com", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env=env).stdout.strip()


def load_company(store: Store, tmp_path: Path) -> list[str]:
    repo = tmp_path / "api"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main", when=COMMITS["c0"])
    shas = {}
    for name, when in COMMITS.items():
        (repo / name).write_text(name)
        _git(repo, "add", name, when=when)
        _git(repo, "commit", "-q", "-m", name, when=when)
        shas[name] = _git(repo, "rev-parse", "HEAD", when=when)
    run_import(store, GitImporter(), repo)
    # the deployment log names c3 by 8 and c1 by 7 hex digits, as CD logs often do
    log = (DATA / "deployments.csv").read_text().format(**shas)
    (tmp_path / "deployments.csv").write_text(log)
    notes = list(run_import(store, IMPORTERS["deployments"], tmp_path / "deployments.csv").notes)
    for kind, name in (("gpus", "gpus.csv"), ("ledger", "ledger.csv"),
                       ("tenant-revenue", "tenant-revenue.csv"), ("finance", "finance.csv"),
                       ("incidents", "incidents.csv"), ("coverage", "coverage-sep.xml"),
                       ("coverage", "coverage-oct-a.xml"), ("coverage", "coverage-oct-b.xml")):
        run_import(store, IMPORTERS[kind], DATA / name)
    return notes


@pytest.fixture
def company(store: Store, tmp_path: Path) -> Store:
    assert load_company(store, tmp_path) == []  # every short SHA resolved
    return store


def test_the_gpu_bill_to_the_cent(company: Store) -> None:
    doc = cost_report.report(company, OCTOBER)
    # h100-a: 15 d × 24 h × 1 × $4 = $1,440 + 16 d × 24 h × 1 × $3 = $1,152 → $2,592
    # h100-b: 31 d × 24 h × 2 × $2.50 = $3,720; bill $6,312.00
    assert doc["gpu_bill"] == 6312.00
    # busy: h100-a r1 ∪ r2 = [0, 150 s) at $4 + r3 360 s at $3; h100-b (r5 720 s + r6 30 s)
    # × 2 GPUs at $2.50 → 150×4/3600 + 360×3/3600 + 1500×2.5/3600 = $0.1667 + $0.30 + $1.0417
    assert (doc["allocated"], doc["idle"]) == (1.51, 6310.49)
    pods = {p["pod"]: p for p in doc["pods"]}
    # h100-a: used 466,666,666 n$ of 259,200 ¢ → 46.67 ¢ → 47 (largest remainder with idle)
    assert (pods["h100-a"]["bill_cents"], pods["h100-a"]["allocated_cents"],
            pods["h100-a"]["idle_cents"]) == (259_200, 47, 259_153)
    # h100-b: used 1,041,666,666 n$ → 104.17 ¢ → 104; idle 371,896
    assert (pods["h100-b"]["bill_cents"], pods["h100-b"]["allocated_cents"],
            pods["h100-b"]["idle_cents"]) == (372_000, 104, 371_896)
    # busy GPU-seconds: 150 + 360 + 750 × 2 = 2,010 of (744 h × 1 + 744 h × 2) × 3600
    assert (pods["h100-a"]["busy_gpu_s"], pods["h100-b"]["busy_gpu_s"]) == (510.0, 1500.0)
    assert doc["utilization"] == pytest.approx(2010 / 8_035_200)
    assert (doc["unpriced_requests"], doc["unpriced_pods"]) == (1, ["l4-x"])  # r10


def test_tenants_models_and_margin_reconcile(company: Store) -> None:
    doc = cost_report.report(company, OCTOBER)
    tenants = {t["tenant"]: t for t in doc["tenants"]}
    # busy n$: acme in 8,333,333 + 50,000,000, out 75,000,000 + 250,000,000; beta in
    # 16,666,667 + 166,666,666 + 41,666,667, out 66,666,666 + 833,333,333 → of 151 ¢:
    # 5.84, 22.52, 32.54, 90.10 → floors 5 + 22 + 32 + 90 = 149, + .84 acme in, .54 acme out
    assert {k: (t["input_cents"], t["output_cents"]) for k, t in tenants.items()} == {
        "acme": (6, 33), "beta": (22, 90)}
    # fully loaded: idle 6,310,491,666,668 n$ shared by busy cost; of 631,200 ¢ the parts are
    # 24,411.05 / 94,156.91 in, 136,004.42 / 376,627.62 out → 24,411 + 94,157 + 136,004 +
    # 376,628 (the one spare cent to .91)
    assert {k: t["loaded_cents"] for k, t in tenants.items()} == {"acme": 160_415,
                                                                 "beta": 470_785}
    models = {m["model"]: m for m in doc["models"]}
    # m8b busy input: (8,333,333 + 16,666,667 + 50,000,000) n$ = $0.075 / 6,000 tokens
    assert models["m8b"]["busy_input_per_m"] == pytest.approx(12.5)
    # m70b busy input: (166,666,666 + 41,666,667) n$ / 8,500 tokens = $24.5098 per M
    assert models["m70b"]["busy_input_per_m"] == pytest.approx(24.509803882, rel=1e-9)
    # fleet: $6,312 / 19,000 tokens = $332,210.53 per M fully loaded; $1.508333332 / 19,000
    assert doc["per_million_tokens"]["fully_loaded"] == pytest.approx(332_210.526315789)
    assert doc["per_million_tokens"]["busy_time"] == pytest.approx(79.385964842, rel=1e-9)
    margin = {m["tenant"]: m for m in doc["margin"]}
    # acme: ($5,000 − $1,604.15) / $5,000; beta: ($4,000 − $4,707.85) / $4,000
    assert margin["acme"]["margin"] == pytest.approx(0.67917)
    assert margin["beta"]["margin"] == pytest.approx(-0.1769625)
    # busy-only beside: (5,000 − 0.39) / 5,000 and (4,000 − 1.12) / 4,000
    assert margin["acme"]["margin_busy_time"] == pytest.approx(0.999922)
    assert margin["beta"]["margin_busy_time"] == pytest.approx(0.99972)


def test_focus_rows_add_up_per_pod(company: Store, tmp_path: Path) -> None:
    out = tmp_path / "focus.csv"
    cost_report.export_focus(company, OCTOBER, out)
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    per_pod: dict[str, int] = {}
    for row in rows:
        per_pod[row["ResourceId"]] = per_pod.get(row["ResourceId"], 0) + round(
            float(row["BilledCost"]) * 100)
    assert per_pod == {"h100-a": 259_200, "h100-b": 372_000}  # each pod's bill, to the cent
    idle = {r["ResourceId"]: r["BilledCost"] for r in rows
            if r["ChargeDescription"] == "idle GPU time"}
    assert idle == {"h100-a": "2591.53", "h100-b": "3718.96"}


def test_the_kpis_by_their_stated_definitions(company: Store) -> None:
    result = build(company, OCTOBER, KpiConfig())
    cto = {r.mapping.id: r.cto for r in result.rows}
    ceo = {r.mapping.id: r.ceo for r in result.rows}
    # lead time: c2 10-04 12:00 → d2 10-05 12:00 = 24 h; c3 (by prefix) 10-05 00:00 → 12 h;
    # c4 10-11 06:00 → d3 10-12 12:00 = 30 h; c1 first shipped in d0 (the service's first,
    # excluded) and is not counted again in d3 → median 24 of 3 changes
    assert (cto[1].value, cto[1].detail["changes"]) == (24.0, 3)
    # KPI 2 (utilization) is the cost report's busy / provisioned: 2,010 / 8,035,200
    assert cto[2].value == pytest.approx(2010 / 8_035_200)
    # uptime: 8 requests not cancelled (r9 is), 1 server failure (r6's 503); the 400 and
    # the 429 are the clients' → 7 / 8
    assert cto[7].value == pytest.approx(0.875)
    # coverage: the latest snapshot of llm-platform, 850 / 1,000 (not 2,350 / 3,000)
    assert cto[8].value == pytest.approx(0.85)
    # MTTR: I0 1 h, I1 2 h → 1.5 h
    assert cto[10].value == pytest.approx(1.5)
    # deploys: d2 (Oct 5) and d3 (Oct 12) succeeded: 2 days / (31 / 7) weeks; change failure
    # rate: d3 is linked to I1 → 1 / 2 successful; d1's incident is a failed attempt's
    assert cto[12].value == pytest.approx(14 / 31)
    assert cto[12].detail["change_failure_rate"] == 0.5
    assert cto[12].detail["failed_deployment_attempts"] == 1
    # gross margin (31,000 − 9,300) / 31,000
    assert ceo[2].value == pytest.approx(0.7)
    # runway: cash $300,000 / October's own burn $15,000 = 20 months
    assert ceo[5].value == pytest.approx(20.0)
    # ARPA: $31,000 / 62 accounts
    assert ceo[11].value == pytest.approx(500.0)
    # burn multiple: $15,000 / 12 × (1,500 + 500 − 250 − 500) = $15,000 → 1.0
    assert ceo[12].value == pytest.approx(1.0)
    # growth efficiency: $15,000 / ($6,000 + $4,000)
    assert ceo[17].value == pytest.approx(1.5)


def test_a_429_counts_against_uptime_only_when_configured(company: Store) -> None:
    result = build(company, OCTOBER, KpiConfig(throttled_is_failure=True))
    uptime = next(r.cto for r in result.rows if r.mapping.id == 7)
    assert uptime.value == pytest.approx(0.75)  # r6 and r8 of 8


def test_one_definition_in_report_page_and_gauges(company: Store) -> None:
    doc = cost_report.report(company, OCTOBER)
    view = page.cost(page.priced(company, OCTOBER), page.Filters((), ()))
    assert view is not None
    assert (view.bill, view.idle, view.spent) == (6312.00, 6310.49, 1.51)
    assert view.fleet_per_million == doc["per_million_tokens"]
    assert view.utilization == doc["utilization"]
    shown = view.models.set_index("name")
    assert shown.loc["m8b", "loaded_input_per_m"] == next(
        m["loaded_input_per_m"] for m in doc["models"] if m["model"] == "m8b")
    gauges: Any = snapshot(company, OCTOBER, KpiConfig())
    per_m = {(m, k, b): v for m, k, b, v in gauges.cost_per_million}
    assert per_m[("m8b", "input", "busy_time")] == pytest.approx(12.5)
    assert per_m[("m8b", "input", "fully_loaded")] == pytest.approx(
        shown.loc["m8b", "loaded_input_per_m"])
    assert gauges.tenant_cost == {"acme": 1604.15, "beta": 4707.85}
    assert gauges.tenant_margin["beta"] == pytest.approx(-0.1769625)
