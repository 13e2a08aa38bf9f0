"""The store on both databases: migrations, importers (round trip, idempotence, bad input)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import SQLModel, select

from collectors.importers.base import BadInputError, run_import
from collectors.importers.ours import IMPORTERS
from collectors.store import Store
from collectors.tables import FinanceMonth, GpuAllocation, Person
from tests.integration.store_fixtures import dump

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parents[1] / "data" / "import"
ROOT = Path(__file__).resolve().parents[2]


def assert_rejected(store: Store, kind: str, path: Path, line: int, field: str,
                    message: str) -> None:
    """The file is refused whole, the error names file, line and field, the store is as it was."""
    before = dump(store)
    with pytest.raises(BadInputError) as info:
        run_import(store, IMPORTERS[kind], path)
    assert str(info.value).startswith(f"{path}:{line}: field {field!r}: "), str(info.value)
    assert message in str(info.value)
    assert dump(store) == before


HEAD = "0012"


def test_a_new_store_is_migrated_to_the_newest_revision(store: Store) -> None:
    assert store.revision() == HEAD
    tables = set(inspect(store.engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    store.upgrade()  # idempotent
    assert store.revision() == HEAD


def test_an_unmigrated_store_upgrades_in_place(tmp_path: Path) -> None:
    bare = Store.open(str(tmp_path / "old.sqlite"), migrate=False)
    assert bare.revision() is None and inspect(bare.engine).get_table_names() == []
    bare.close()
    upgraded = Store.open(str(tmp_path / "old.sqlite"))
    assert upgraded.revision() == HEAD


def test_people_round_trip_and_reimport_changes_nothing(store: Store, tmp_path: Path) -> None:
    result = run_import(store, IMPORTERS["people"], DATA / "people.csv")
    assert (result.rows, result.already_imported) == (4, False)
    with store.session() as session:
        people = {p.person: p for p in session.exec(select(Person)).all()}
    assert people["ben"].exited == date(2026, 6, 30) and people["chloe"].tech is False
    assert people["dev"].hourly_rate == 110
    before = dump(store)
    again = run_import(store, IMPORTERS["people"], DATA / "people.csv")
    assert again.already_imported and dump(store) == before
    copy = tmp_path / "renamed.csv"
    shutil.copy(DATA / "people.csv", copy)
    assert run_import(store, IMPORTERS["people"], copy).already_imported


def test_finance_and_gpus_round_trip(store: Store) -> None:
    run_import(store, IMPORTERS["finance"], DATA / "finance.csv")
    run_import(store, IMPORTERS["gpus"], DATA / "gpus.csv")
    with store.session() as session:
        months = session.exec(select(FinanceMonth).order_by(FinanceMonth.month)).all()
        gpus = session.exec(select(GpuAllocation)).all()
    assert [m.month for m in months] == [date(2026, 9, 1), date(2026, 10, 1)]
    assert months[1].net_income == -120000 and months[1].customers_new == 10
    assert (months[0].ebitda, months[1].ebitda, months[1].sales_cycle_days) == (-95000, None, 38.5)
    h100 = sorted((g for g in gpus if g.pod == "vllm-0"), key=lambda g: g.valid_from)
    assert h100[0].valid_to is not None
    assert h100[0].valid_to.astimezone(UTC) == datetime(2026, 7, 1, tzinfo=UTC)
    assert h100[1].valid_to is None and h100[1].dollars_per_gpu_hour == 2.19


def test_a_changed_file_updates_by_natural_key(store: Store, tmp_path: Path) -> None:
    run_import(store, IMPORTERS["people"], DATA / "people.csv")
    changed = tmp_path / "people.csv"
    changed.write_text((DATA / "people.csv").read_text().replace(
        "dev,ml,true,2025-09-01,,110", "dev,ml,true,2025-09-01,2026-11-01,110"))
    run_import(store, IMPORTERS["people"], changed)
    with store.session() as session:
        people = session.exec(select(Person)).all()
    assert len(people) == 4
    assert next(p for p in people if p.person == "dev").exited == date(2026, 11, 1)


BAD = [
    ("people", "person,team,tech,hired,exited,hourly_rate\nana,x,true,2024-01-01,,95\n"
     "bob,x,maybe,2024-01-01,,90\n", 3, "tech", "'maybe' is not true/false"),
    ("people", "person,team,tech,hired,hourly_rate\nana,x,true,2024-01-01,95\n",
     1, "exited", "column is missing"),
    ("people", "person,team,tech,hired,exited,hourly_rate\nana,x,true,2024-01-01,,95\n"
     "ana,y,true,2024-02-01,,95\n", 3, "hired",
     "ana is already employed on 2024-02-01 (the stint on line 2)"),
    ("people", "person,team,tech,hired,exited,hourly_rate\nana,x,true,2024-05-01,2024-01-01,"
     "95\n", 2, "exited", "is before hired"),
    ("finance", None, 3, "revenue", "'lots' is not a number"),
    ("gpus", "pod,gpu_type,gpu_count,dollars_per_gpu_hour,valid_from,valid_to\n"
     "p,H100,8,2.5,2026-01-01T00:00:00,\n", 2, "valid_from", "has no time zone"),
    ("gpus", "pod,gpu_type,gpu_count,dollars_per_gpu_hour,valid_from,valid_to\n"
     "p,H100,0,2.5,2026-01-01T00:00:00Z,\n", 2, "gpu_count", "0 is below 1"),
    ("people", "person,team,tech,hired,exited,hourly_rate\nana,x,true,2024-01-01,,95\n"
     "bo,x,true,2024-01-01\n", 3, "(row)", "has 4 cells, the header 6: a truncated row"),
    ("work-items", "Issue key,Issue Type,Status,Created,Resolved,Fix Version/s\n"
     "OPS-1,Bug,Done,2026-10-01 09:00,2026-10-02 10:00,2026.11\n"
     "OPS-2,Bug,Done,2026-10-01 09:00,2026-10-02 10:00\n", 3, "(row)",
     "has 5 cells, the header 6: a truncated row"),
]


@pytest.mark.parametrize(("kind", "content", "line", "field", "message"), BAD,
                         ids=["wrong-type", "missing-column", "overlapping-stints",
                              "dates-out-of-order", "bad-number-last-row", "naive-time",
                              "zero-gpus", "short-row", "truncated-jira-row"])
def test_bad_file_is_rejected_whole_and_the_store_is_unchanged(
        store: Store, tmp_path: Path, kind: str, content: str | None, line: int, field: str,
        message: str) -> None:
    run_import(store, IMPORTERS["people"], DATA / "people.csv")
    path = tmp_path / f"{kind}.csv"
    if content is None:  # a valid first row, then a bad one: nothing may be written
        good = (DATA / "finance.csv").read_text().splitlines()
        content = "\n".join([good[0], good[1], good[2].replace("428000", "lots", 1)]) + "\n"
    path.write_text(content)
    assert_rejected(store, kind, path, line, field, message)


def test_a_person_who_leaves_and_returns_keeps_both_stints(store: Store,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("person,team,tech,hired,exited,hourly_rate\n"
                    "ana,inference,true,2024-01-01,2025-03-31,95\n"
                    "ana,platform,true,2025-09-01,,99\n")
    assert run_import(store, IMPORTERS["people"], path).rows == 2
    with store.session() as session:
        stints = sorted(session.exec(select(Person)).all(), key=lambda p: p.hired)
    assert [(p.team, p.exited) for p in stints] == [("inference", date(2025, 3, 31)),
                                                     ("platform", None)]


def test_non_utf8_bytes_name_their_line(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b"person,team,tech,hired,exited,hourly_rate\nana,x,true,2024-01-01,,95\n"
                     b"jos\xe9,x,true,2024-01-01,,95\n")
    assert_rejected(store, "people", path, 3, "(bytes)", "not UTF-8: byte 0xe9")


def test_import_command(tmp_path: Path) -> None:
    database = tmp_path / "cli.sqlite"
    cli = str(ROOT / ".venv" / "bin" / "llmkpi")
    done = subprocess.run([cli, "import", "gpus", str(DATA / "gpus.csv"), "--database",
                           str(database)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "imported 3 gpus rows" in done.stdout and "3 rows checked and written" in done.stderr
    again = subprocess.run([cli, "import", "gpus", str(DATA / "gpus.csv"), "--database",
                            str(database)], capture_output=True, text=True, check=False)
    assert "already imported" in again.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("pod,gpu_type\n")
    failed = subprocess.run([cli, "import", "gpus", str(bad), "--database", str(database)],
                            capture_output=True, text=True, check=False)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert f"{bad}:1: field 'gpu_count': column is missing" in failed.stderr
    revision = subprocess.run([cli, "db", "revision", "--database", str(database)],
                              capture_output=True, text=True, check=False)
    assert f"schema revision {HEAD}" in revision.stdout


def test_junit_and_coverage_round_trip(store: Store) -> None:
    from collectors.tables import CoverageReport, TestRun

    assert run_import(store, IMPORTERS["junit"], DATA / "junit.xml").rows == 2
    assert run_import(store, IMPORTERS["coverage"], DATA / "coverage.xml").rows == 1
    with store.session() as session:
        runs = {r.suite: r for r in session.exec(select(TestRun)).all()}
        (report,) = session.exec(select(CoverageReport)).all()
    assert (runs["unit"].tests, runs["unit"].failures, runs["unit"].skipped) == (120, 1, 2)
    assert runs["integration"].seconds == pytest.approx(126.3)
    assert (report.lines_valid, report.lines_covered) == (4210, 3517)
    assert report.taken.astimezone(UTC) == datetime.fromtimestamp(1_791_990_000, tz=UTC)


@pytest.mark.parametrize(("kind", "content", "line", "field", "message"), [
    ("junit", '<testsuites>\n<testsuite name="u" tests="3" failures="5" '
     'timestamp="2026-10-14T09:00:00Z"/>\n</testsuites>', 2, "testsuite@failures", "exceed 3"),
    ("junit", '<testsuites>\n<testsuite name="u" tests="3"/>\n</testsuites>', 2,
     "testsuite@timestamp", "is missing"),
    ("junit", "<testsuites>\n<testsuite name='u'>\n", 3, "(xml)", "no element found"),
    ("coverage", '<coverage timestamp="1" lines-valid="10" lines-covered="11"/>', 1,
     "coverage@lines-covered", "exceeds lines-valid 10"),
    ("coverage", "<report/>", 1, "(root)", "expected a Cobertura"),
], ids=["failures-exceed-tests", "no-timestamp", "truncated", "covered-exceeds", "wrong-root"])
def test_bad_xml_is_rejected_with_its_line(store: Store, tmp_path: Path, kind: str,
                                           content: str, line: int, field: str,
                                           message: str) -> None:
    path = tmp_path / f"{kind}.xml"
    path.write_text(content)
    assert_rejected(store, kind, path, line, field, message)


def test_mixpanel_export_and_local_outbox(store: Store, tmp_path: Path) -> None:
    from collectors.tables import ProductEventRow
    from exporters.mixpanel import ProductEvents
    from exporters.outbox import Outbox

    # 4 lines read; one repeats an earlier $insert_id, so the store holds 3 of them
    assert run_import(store, IMPORTERS["mixpanel"], DATA / "mixpanel-export.jsonl").rows == 4
    outbox = Outbox(tmp_path / "events.sqlite")
    tracked = ProductEvents(outbox).track("nps_submitted", "gamma", {"score": 3},
                                          at=1_791_990_500.0)
    outbox.close()
    assert run_import(store, IMPORTERS["outbox"], tmp_path / "events.sqlite").rows == 1
    with store.session() as session:
        events = {e.insert_id: e for e in session.exec(select(ProductEventRow)).all()}
    assert len(events) == 4
    assert events["d4e5f6"].event == "nps_submitted"
    assert '"score": 9' in events["d4e5f6"].properties
    assert events[str(tracked)].source == "outbox"
    assert events[str(tracked)].happened.astimezone(UTC) == datetime.fromtimestamp(
        1_791_990_500, tz=UTC)


def test_bad_event_line_is_named(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text('{"event":"x","properties":{"time":1791990000,"distinct_id":"a"}}\n'
                    '{"event":"x","properties":{"time":"yesterday","distinct_id":"a"}}\n')
    assert_rejected(store, "mixpanel", path, 2, "properties.time", "is not a Unix time")


@pytest.mark.parametrize(("props", "field", "message"), [
    ('"score": 11', "properties.score", "11 is not an NPS score"),
    ('"score": 7.5', "properties.score", "7.5 is not an NPS score"),
    ('"score": "9"', "properties.score", "'9' is not an NPS score"),
    ('"score": true', "properties.score", "True is not an NPS score"),
    ('"score": 9, "survey": "exit"', "properties.survey", "'exit' is not one of"),
], ids=["above-10", "fraction", "text", "bool", "survey"])
def test_an_nps_answer_out_of_range_is_named(store: Store, tmp_path: Path, props: str,
                                             field: str, message: str) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text('{"event":"nps_submitted","properties":{"time":1791990000,'
                    '"distinct_id":"a","score":10}}\n'
                    '{"event":"nps_submitted","properties":{"time":1791990001,'
                    f'"distinct_id":"b",{props}}}}}\n')
    assert_rejected(store, "mixpanel", path, 2, field, message)


def test_incidents_from_pagerduty_csv_and_json(store: Store) -> None:
    from collectors.tables import Incident

    assert run_import(store, IMPORTERS["incidents"], DATA / "incidents.csv").rows == 3
    assert run_import(store, IMPORTERS["incidents"], DATA / "incidents.json").rows == 1
    with store.session() as session:
        found = {i.id: i for i in session.exec(select(Incident)).all()}
    outage, leak, open_one, scrape = (found[k] for k in ("Q1ABCD", "Q2EFGH", "Q3IJKL", "Q9ZZZZ"))
    assert outage.severity == "p1" and outage.deployment_id == "deploy-2026-10-03-1"
    assert outage.acknowledged is not None and outage.resolved is not None
    assert (outage.acknowledged - outage.detected).total_seconds() == 180
    assert (outage.resolved - outage.detected).total_seconds() == 4109
    assert leak.category == "security" and leak.contained is not None
    assert open_one.resolved is None and open_one.severity == "low"
    assert scrape.resolved is not None
    assert (scrape.resolved - scrape.detected).total_seconds() == 42 * 60
    assert scrape.service == "inference" and scrape.severity == "high"


@pytest.mark.parametrize(("suffix", "content", "line", "field", "message"), [
    (".csv", "id,service_name,urgency,created_on,resolved_on\n"
     "A,svc,high,2026-10-03T14:00:00Z,2026-10-03T13:00:00Z\n", 2, "resolved_on",
     "before the incident was created"),
    (".csv", "id,service_name,urgency,created_on\nA,svc,whenever,2026-10-03T14:00:00Z\n", 2,
     "urgency", "'whenever' is not one of"),
    (".json", '{"incidents": [\n {"id": "A", "created_at": "2026-10-03T14:00:00Z",\n'
     '  "urgency": "high", "service": {"summary": "s"}},\n {"id": "B",\n'
     '  "created_at": "yesterday", "urgency": "high", "service": {"summary": "s"}}\n]}',
     4, "incidents[1].created_at", "'yesterday' is not an ISO 8601 time"),
], ids=["resolved-before-created", "bad-urgency", "json-bad-time"])
def test_bad_incidents_are_named(store: Store, tmp_path: Path, suffix: str, content: str,
                                 line: int, field: str, message: str) -> None:
    path = tmp_path / f"incidents{suffix}"
    path.write_text(content)
    assert_rejected(store, "incidents", path, line, field, message)


def test_0004_rebuilds_the_roll_up_by_the_availability_rule(tmp_path: Path) -> None:
    from collectors import rollup
    from collectors.tables import LedgerHour

    old = Store.open(str(tmp_path / "old.sqlite"), migrate=False)
    old.upgrade("0003")
    with old.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO ledger (source, request_id, tenant, model, feature, endpoint, pod, gpu,"
            " arrival, finish, outcome, http_status, e2e_latency) VALUES ('sidecar', 'a', 't',"
            " 'm', 'f', 'e', 'p', '', '2026-10-01 00:00:00+00:00', '2026-10-01 00:00:01+00:00',"
            " 'rejected', 429, 1.0)"))
        # the old roll-up counted the client's 429 as a failure
        conn.execute(text(
            "INSERT INTO ledger_hour (pod, hour, requests, ok, failed, input_tokens,"
            " output_tokens, busy_seconds, ttft_counts, e2e_counts) VALUES ('p',"
            " '2026-10-01 00:00:00+00:00', 1, 0, 1, 0, 0, 1.0, '[]', '[]')"))
        conn.execute(text("INSERT INTO rollup_state (name, last_id) VALUES ('ledger_hour', 1)"))
    old.close()
    store = Store.open(str(tmp_path / "old.sqlite"))
    assert store.revision() == HEAD
    assert rollup.pending(store) == 1  # emptied: the next refresh rebuilds it
    rollup.refresh(store)
    with store.session() as session:
        (hour,) = session.exec(select(LedgerHour)).all()
    assert (hour.requests, hour.failed, hour.throttled, hour.cancelled) == (1, 0, 1, 0)
    store.close()
