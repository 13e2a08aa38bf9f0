"""The KPI layer on a real store (SQLite and PostgreSQL): the hourly roll-up, the report on
the demo company, the `llmkpi kpi` commands and the gauges `kpi serve` exposes."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlmodel import col, select

from collectors import rollup
from collectors.demo_company import DemoCompany
from collectors.demo_company.load import load
from collectors.store import Store
from collectors.tables import FinanceMonth, LedgerHour, LedgerRow
from kpi_mapping import inputs
from kpi_mapping.config import KpiConfig
from kpi_mapping.cost_report import report as cost_report
from kpi_mapping.periods import parse_period
from kpi_mapping.report import build, format_table, to_dict
from llmkpi import processes
from llmkpi.demo_data import make
from specs import catalog
from tests.integration.test_store import ROOT

pytestmark = pytest.mark.integration
CLI = str(ROOT / ".venv" / "bin" / "llmkpi")
T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def request(n: int, pod: str, arrival: datetime, e2e: float, ttft: float = 0.2,
            outcome: str = "ok") -> LedgerRow:
    return LedgerRow(source="sidecar", request_id=f"r{n}", tenant="t", model="m", feature="f",
                     endpoint="chat", pod=pod, arrival=arrival,
                     finish=arrival + timedelta(seconds=e2e), outcome=outcome,
                     http_status=200 if outcome == "ok" else 503, time_to_first_token=ttft,
                     e2e_latency=e2e, queue_time=0.0, prompt_tokens=10, output_tokens=5)


def hours_of(store: Store) -> dict[tuple[str, datetime], LedgerHour]:
    with store.session() as session:
        rows = session.exec(select(LedgerHour)).all()
    return {(r.pod, pd.Timestamp(r.hour).tz_localize(None).to_pydatetime()
             if pd.Timestamp(r.hour).tzinfo else r.hour): r for r in rows}


def test_roll_up_counts_each_hour_once_and_takes_late_rows(store: Store) -> None:
    with store.session() as session:
        session.add_all([
            request(1, "a", T0 + timedelta(minutes=50), 20 * 60),  # 09:50-10:10, crosses
            request(2, "a", T0 + timedelta(minutes=55), 60, ttft=3.0),  # inside request 1
            request(3, "a", T0 + timedelta(hours=1, minutes=30), 60, outcome="error"),
            request(4, "b", T0, 30)])
        session.commit()
    assert rollup.refresh(store) == 4
    rows = hours_of(store)
    nine, ten = datetime(2026, 10, 1, 9), datetime(2026, 10, 1, 10)
    assert rows[("a", nine)].requests == 2 and rows[("a", nine)].busy_seconds == \
        pytest.approx(600)  # the overlap of request 2 with request 1 counts once
    assert rows[("a", ten)].requests == 1 and rows[("a", ten)].failed == 1
    assert rows[("a", ten)].busy_seconds == pytest.approx(600 + 60)
    assert sum(json.loads(rows[("a", nine)].ttft_counts).values()) == 2  # sparse {bin: n}
    assert rows[("b", nine)].busy_seconds == pytest.approx(30)
    assert rollup.refresh(store) == 0  # nothing new, nothing done

    with store.session() as session:  # a late row for an hour already rolled up
        session.add(request(5, "a", T0 + timedelta(minutes=5), 600))
        session.commit()
    assert rollup.refresh(store) == 1
    rows = hours_of(store)
    assert rows[("a", nine)].requests == 3
    assert rows[("a", nine)].busy_seconds == pytest.approx(600 + 600)


@pytest.fixture(scope="module")
def company(tmp_path_factory: pytest.TempPathFactory) -> DemoCompany:
    """Four months of the demo company, generated once for the module."""
    return make(tmp_path_factory.mktemp("company"), 4, 5, date(2026, 10, 1), base_per_day=40,
                raw_days=None)


def test_report_on_the_demo_company_agrees_with_its_inputs(store: Store,
                                                           company: DemoCompany) -> None:
    load(store, company, say=lambda _line: None)
    period = parse_period("month", "2026-10")
    config = KpiConfig(correlation_periods=4)
    result = build(store, period, config)
    assert len(result.rows) == 19
    for row in result.rows:  # a number, or a named missing input, or a reason — never blank
        for side in (row.ceo, row.cto):
            assert side.value is not None or side.missing or side.note, row.mapping.key

    with store.session() as session:
        october = session.get(FinanceMonth, date(2026, 10, 1))
    assert october is not None
    assert result.row(2).ceo.value == pytest.approx(
        (october.revenue - october.cogs) / october.revenue)
    # utilization from the roll-up equals the cost allocation's busy share of the GPUs
    cost = cost_report(store, period)
    assert result.row(2).cto.value == pytest.approx(cost["utilization"], rel=1e-6)
    # p95 TTFT from the roll-up's bins lands within one bin of the raw ledger's p95
    with store.engine.connect() as conn:
        ledger = pd.read_sql(select(LedgerRow.time_to_first_token).where(
            col(LedgerRow.arrival) >= period.start, col(LedgerRow.arrival) < period.end), conn)
    raw = float(np.quantile(ledger["time_to_first_token"].dropna(), 0.95))
    bounds = (0.0, *rollup.LATENCY_BOUNDS)
    index = int(np.searchsorted(rollup.LATENCY_BOUNDS, raw))
    rolled = result.row(13).cto.value
    # (numpy ranks samples at (n-1)q, histogram_quantile at nq: a neighbouring bin may win)
    assert rolled is not None and bounds[max(0, index - 1)] <= rolled <= bounds[index + 2]
    assert result.row(13).cto.detail["requests"] == len(ledger)
    # inputs loaded for a window after the launch still know the feature was shipped
    # (adoption and EPI of a week period went missing without it)
    later = inputs.load(store, period.start, period.end)
    assert "feature_deployed" in set(later.events["event"])
    week = build(store, parse_period("week", "2026-W43"), config)
    assert week.row(19).cto.value is not None and week.row(6).cto.value is not None
    # finance is monthly: a week (W43: Oct 19-25) shows October's figure, says so, and shows
    # no change against the week before, which is October too
    assert week.row(2).ceo.value == pytest.approx(result.row(2).ceo.value)
    assert week.row(2).ceo.detail["monthly_figure_of"] == "2026-10"
    assert week.row(2).ceo_change is None and week.row(18).ceo_change is None
    doc = to_dict(result, config)
    assert doc["north_star"]["revenue_per_employee"]["value"] > 0
    assert len(doc["mappings"][0]["ceo_history"]) == 4 + 3
    assert "Revenue per employee" in format_table(result, config)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "kpi", *args], capture_output=True, text=True, check=False)


def test_kpi_commands_on_an_empty_store_name_what_is_missing(tmp_path: Path) -> None:
    database = str(tmp_path / "empty.sqlite")
    listed = run("mappings", "--format", "json")
    mappings = json.loads(listed.stdout)
    assert [m["id"] for m in mappings] == list(range(1, 20))
    assert {"ceo_kpi", "ceo_formula", "cto_metric", "cto_formula", "cto_unit", "better",
            "bands", "sources", "events", "promql"} <= set(mappings[0])

    # a reading command never creates a store: a mistyped path is one line naming it
    for command in ([CLI, "kpi", "report"], [CLI, "cost", "report"],
                    [CLI, "cost", "export", "--focus", str(tmp_path / "f.csv")]):
        missing = subprocess.run([*command, "--database", database], capture_output=True,
                                 text=True, check=False)
        assert missing.returncode == 2 and "Traceback" not in missing.stderr
        assert f"no store at {database}" in missing.stderr
        assert not Path(database).exists()
    subprocess.run([CLI, "db", "upgrade", "--database", database], check=True,
                   capture_output=True)
    done = run("report", "--at", "2026-10", "--format", "csv", "--database", database)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 19
    by_key = {r["key"]: r for r in rows}
    assert by_key["gross_margin"]["ceo_missing"] == "finance (llmkpi import finance)"
    assert by_key["churn_rate"]["cto_missing"] == "incidents (llmkpi import incidents)"
    assert by_key["nps"]["cto_value"] == ""

    bad = tmp_path / "kpi.yaml"
    bad.write_text("version: 1\nmappings:\n  13:\n    bands: {green: {max: 0.5},"
                   " amber: {maxx: 2}}\n")
    for config, message in ((bad, f"{bad}:4: mappings.13.bands.amber.maxx: unknown key"),
                            (tmp_path / "none.yaml", "cannot read the KPI config")):
        failed = run("report", "--at", "2026-10", "--config", str(config), "--database",
                     database)
        assert failed.returncode == 2 and "Traceback" not in failed.stderr
        assert message in failed.stderr, failed.stderr


def test_kpi_serve_exposes_the_report_as_catalogue_gauges(company: DemoCompany,
                                                          tmp_path: Path) -> None:
    database = tmp_path / "demo.sqlite"
    store = Store.open(str(database))
    load(store, company, say=lambda _line: None)
    store.close()
    port = processes.free_port()
    started = processes.start(f"kpi-serve-{port}", [
        "kpi", "serve", "--at", "2026-10", "--port", str(port), "--interval", "60",
        "--database", str(database)], tmp_path / "logs")
    with processes.running(started):
        url = f"http://127.0.0.1:{port}/metrics"
        processes.wait_http(url, started, timeout=120)
        text = urllib.request.urlopen(url, timeout=10).read().decode()
    report = json.loads(run("report", "--at", "2026-10", "--format", "json", "--database",
                            str(database)).stdout)
    gross = report["mappings"][1]
    line = (f'{catalog.KPI_CEO_VALUE.name}{{key="gross_margin",mapping="2"}} ')
    assert line in text
    value = float(text.split(line, 1)[1].split()[0])
    assert value == pytest.approx(gross["ceo"]["value"])
    for spec in (catalog.KPI_CTO_VALUE, catalog.KPI_BAND, catalog.REVENUE_PER_EMPLOYEE,
                 catalog.GPU_BILL, catalog.GPU_IDLE_COST, catalog.COST_PER_MILLION_TOKENS,
                 catalog.TENANT_GPU_COST, catalog.FEATURE_GPU_COST, catalog.KPI_PERIOD):
        assert f"\n{spec.name}" in text, spec.name
    assert 'kpi_period_info{kind="month",period="2026-10"} 1.0' in text
