"""`llmkpi demo-data`: the generated company is deterministic, consistent across its parts,
loads through the real importers on both databases, and loads twice without change."""

from __future__ import annotations

import itertools
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlmodel import select

from collectors import rollup
from collectors.demo_company.load import load
from collectors.store import Store
from collectors.tables import (
    Commit,
    CoverageReport,
    Deployment,
    EngineSnapshotRow,
    FinanceMonth,
    Incident,
    LedgerHour,
    LedgerRow,
    LedgerUsage,
    Person,
    ProductEventRow,
    Release,
    TenantRevenue,
    WorkItem,
)
from llmkpi.demo_data import make
from tests.integration.store_fixtures import dump
from tests.integration.test_store import ROOT

pytestmark = pytest.mark.integration
END = date(2026, 10, 1)


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_same_seed_same_company_other_seed_other_company(tmp_path: Path) -> None:
    one = make(tmp_path / "a", 3, 11, END, base_per_day=20)
    two = make(tmp_path / "b", 3, 11, END, base_per_day=20)
    other = make(tmp_path / "c", 3, 12, END, base_per_day=20)
    assert files_of(one.directory) == files_of(two.directory)
    assert files_of(one.directory)["finance.csv"] != files_of(other.directory)["finance.csv"]
    week = one.timeline().start
    pd.testing.assert_frame_equal(one.traffic().span(week, 48), two.traffic().span(week, 48))


def test_older_months_as_the_roll_up_are_what_raw_rows_give(tmp_path: Path) -> None:
    """The same company loaded with every request raw, and with only its last two days raw:
    the hourly roll-up both leave (what cost and every KPI read) is the same, row for row."""
    stores = []
    for name, raw_days in (("raw", None), ("rolled", 2)):
        store = Store.open(str(tmp_path / f"{name}.sqlite"))
        load(store, make(tmp_path / name, 2, 11, END, base_per_day=30, raw_days=raw_days),
             say=lambda _line: None)
        stores.append(store)
    raw, rolled = stores
    with raw.session() as a, rolled.session() as b:
        assert len(a.exec(select(LedgerRow)).all()) > 5 * len(b.exec(select(LedgerRow)).all())
        for table in (LedgerHour, LedgerUsage):
            key = (table.pod, table.hour, *((LedgerUsage.tenant, LedgerUsage.feature)
                                            if table is LedgerUsage else ()))
            left = [r.model_dump() for r in a.exec(select(table).order_by(*key)).all()]
            right = [r.model_dump() for r in b.exec(select(table).order_by(*key)).all()]
            assert len(left) > 500 and left == right
    for store in stores:
        store.close()


def test_demo_company_loads_and_its_parts_agree(store: Store, tmp_path: Path) -> None:
    company = make(tmp_path / "company", 3, 11, END, base_per_day=40, raw_days=None)
    counts = load(store, company, say=lambda _line: None)
    with store.session() as s:
        finance = s.exec(select(FinanceMonth).order_by(FinanceMonth.month)).all()
        ledger = s.exec(select(LedgerRow)).all()
        readings = s.exec(select(EngineSnapshotRow)).all()
        commits = {c.sha for c in s.exec(select(Commit)).all()}
        deployments = s.exec(select(Deployment)).all()
        incidents = s.exec(select(Incident)).all()
        items = s.exec(select(WorkItem)).all()
        events = s.exec(select(ProductEventRow)).all()
        revenue = s.exec(select(TenantRevenue)).all()
        people = s.exec(select(Person)).all()
        releases = s.exec(select(Release)).all()
        coverage = s.exec(select(CoverageReport)).all()
    assert [m.month for m in finance] == [date(2026, 8, 1), date(2026, 9, 1), END]
    assert counts["ledger"] == len(ledger) > 1000 and counts["engine_snapshot"] == len(readings)
    assert len(coverage) == 3 and len(releases) == 3 and len(people) > 20

    # money: MRR and customers roll from one month to the next; tenants' revenue fits inside
    for before, after in itertools.pairwise(finance):
        rolled = (before.mrr_start + before.mrr_new + before.mrr_expansion
                  - before.mrr_contraction - before.mrr_churned)
        assert after.mrr_start == pytest.approx(rolled, abs=0.05)
        assert after.customers_start == (before.customers_start + before.customers_new
                                         - before.customers_lost)
    for month in finance:
        share = sum(r.revenue for r in revenue if r.month == month.month)
        assert 0 < share < month.revenue
    assert {r.tenant for r in revenue} == {r.tenant for r in ledger}

    # engineering: every deployed SHA is a commit of the repository; all work-item kinds
    deployed = {sha for d in deployments for sha in d.commit_shas.split()}
    assert deployed and deployed <= commits
    assert {"defect", "debt", "idea", "feature"} <= {w.type for w in items}
    assert {"success", "failure"} == {d.result for d in deployments}

    # the outage: a failed deploy, a P1 from its start to its end, 503s only inside it, the
    # engines down, users telling Mixpanel
    errors = sorted(r.arrival for r in ledger if r.outcome == "error")
    assert errors and all(r.http_status == 503 for r in ledger if r.outcome == "error")
    (p1,) = [i for i in incidents if i.severity == "p1"]
    assert p1.resolved is not None and p1.deployment_id is not None
    assert p1.detected - timedelta(minutes=5) <= errors[0] and errors[-1] <= p1.resolved
    cause = next(d for d in deployments if d.id == p1.deployment_id)
    assert cause.result == "failure" and cause.finished <= p1.detected
    down = [r.taken for r in readings if not r.up]
    assert down and min(down) >= errors[0] - timedelta(minutes=15)
    assert max(down) <= p1.resolved
    kinds = {e.event for e in events}
    assert {"nps_submitted", "feature_engaged", "integration_attempted",
            "downtime_experienced", "recovery_noticed"} <= kinds

    # loading the same company again changes nothing
    before = dump(store)
    load(store, company, say=lambda _line: None)
    assert dump(store) == before


def test_demo_data_command(tmp_path: Path) -> None:
    """Run as `make demo` runs it: relative paths, from the working directory; twice."""
    cli = str(ROOT / ".venv" / "bin" / "llmkpi")
    bad = subprocess.run([cli, "demo-data", "--months", "1", "--out", str(tmp_path / "x"),
                          "--database", str(tmp_path / "x.sqlite")],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--months 1: give 2 to 36" in bad.stderr
    wrong = subprocess.run([cli, "demo-data", "--end-month", "Oct", "--out", str(tmp_path)],
                           capture_output=True, text=True, check=False)
    assert "--end-month 'Oct' is not a month (YYYY-MM)" in wrong.stderr
    for run in (1, 2):
        done = subprocess.run([cli, "demo-data", "--months", "2", "--requests-per-day", "10",
                               "--end-month", "2026-10", "--out", "c", "--database",
                               "c.sqlite"], capture_output=True, text=True, check=False,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "ledger" in done.stdout and "loading into" in done.stderr
        assert "months" in done.stderr  # progress on the long part
        assert (run == 2) == ("already loaded" in done.stderr)
    assert (tmp_path / "c" / "repo" / ".git" / "demo-marks").is_file()


def test_a_late_request_adds_to_an_hour_whose_raw_rows_are_gone(store: Store,
                                                               tmp_path: Path) -> None:
    """Older months are a roll-up with no raw rows behind them (as when raw partitions age
    out): a late request for such an hour is added to it, never rebuilds it from itself."""
    load(store, make(tmp_path / "c", 2, 11, END, base_per_day=30, raw_days=2),
         say=lambda _line: None)
    hour = datetime(2026, 9, 15, 14, tzinfo=UTC)

    def others() -> list[tuple[str, datetime, int, float]]:  # every other pod-hour
        with store.session() as s:
            return sorted((h.pod, h.hour.replace(tzinfo=None), h.requests, h.busy_seconds)
                          for h in s.exec(select(LedgerHour)).all()
                          if h.hour.replace(tzinfo=None) != hour.replace(tzinfo=None))

    rest = others()
    with store.session() as s:
        before = s.get(LedgerHour, ("vllm-0", hour))
        usage_before = s.exec(select(LedgerUsage).where(LedgerUsage.hour == hour)).all()
    assert before is not None and before.requests > 1
    late = {"source": "late", "request_id": "late-1", "tenant": "tenant-0000",
            "model": usage_before[0].model, "feature": "chat", "endpoint": "chat",
            "pod": "vllm-0", "gpu": "", "arrival": hour + timedelta(minutes=30),
            "finish": hour + timedelta(minutes=30, seconds=2), "outcome": "ok",
            "http_status": 200, "e2e_latency": 2.0, "time_to_first_token": 0.2,
            "prompt_tokens": 1000, "output_tokens": 50}
    with store.session() as s:
        store.insert_ignore(s, LedgerRow, [late])
        s.commit()
    assert rollup.refresh(store) == 1
    with store.session() as s:
        after = s.get(LedgerHour, ("vllm-0", hour))
        usage_after = s.exec(select(LedgerUsage).where(LedgerUsage.hour == hour)).all()
    assert after is not None
    assert (after.requests, after.input_tokens) == (before.requests + 1,
                                                    before.input_tokens + 1000)
    assert before.busy_seconds <= after.busy_seconds <= 3600
    assert sum(u.requests for u in usage_after) == sum(u.requests for u in usage_before) + 1
    assert sum(u.output_tokens for u in usage_after) == \
        sum(u.output_tokens for u in usage_before) + 50
    assert others() == rest  # every other hour, raw or roll-up, is left as it was
