"""Importers that check against the store: request records (`import ledger`), GPU price rows
that may not overlap, commit prefixes, coverage snapshots per component."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from collectors.importers.base import BadInputError, run_import
from collectors.importers.ours import IMPORTERS
from collectors.importers.xmlfiles import CoverageImporter
from collectors.store import Store
from collectors.tables import Commit, CoverageReport, Deployment, LedgerRow
from tests.integration.store_fixtures import dump
from tests.integration.test_store import ROOT, assert_rejected

pytestmark = pytest.mark.integration
RECON = ROOT / "tests" / "data" / "reconciliation"
HEADER = ("request_id,tenant,model,pod,arrival,finish,outcome,http_status,"
          "time_to_first_token,prompt_tokens,output_tokens\n")
ROW = "q1,acme,m8b,p1,2026-10-01T00:00:00Z,2026-10-01T00:00:02Z,ok,200,0.3,10,5\n"


def ledger_rows(store: Store) -> list[LedgerRow]:
    with store.session() as session:
        return list(session.exec(select(LedgerRow).order_by(LedgerRow.request_id)).all())


def test_ledger_csv_and_json_lines_import_once(store: Store, tmp_path: Path) -> None:
    result = run_import(store, IMPORTERS["ledger"], RECON / "ledger.csv")
    assert result.rows == 9
    rows = {r.request_id: r for r in ledger_rows(store)}
    assert rows["r2"].e2e_latency == 100.0 and rows["r2"].feature == "search"
    assert rows["r8"].http_status == 429 and rows["r8"].outcome == "rejected"
    assert rows["r6"].time_to_first_token is None and rows["r6"].source == "import"
    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps({"request_id": "j1", "tenant": "beta", "model": "m70b",
                                 "arrival": "2026-10-03T00:00:00Z",
                                 "finish": "2026-10-03T00:00:01.5Z", "outcome": "error",
                                 "http_status": 502, "pod": "h100-b"}) + "\n\n")
    assert run_import(store, IMPORTERS["ledger"], lines).rows == 1
    # the same records under another file name: keyed by request id, nothing doubles
    copy = tmp_path / "again.csv"
    copy.write_text((RECON / "ledger.csv").read_text() + "\n")
    run_import(store, IMPORTERS["ledger"], copy)
    assert len(ledger_rows(store)) == 10


@pytest.mark.parametrize(("name", "content", "line", "field", "message"), [
    ("short.csv", HEADER + ROW.replace(",10,5\n", "\n"), 2, "(row)", "a truncated row"),
    ("outcome.csv", HEADER + ROW.replace(",ok,", ",fine,"), 2, "outcome", "'fine' is not one"),
    ("status.csv", HEADER + ROW.replace(",200,", ",42,"), 2, "http_status", "not an HTTP"),
    ("order.csv", HEADER + ROW.replace("00:00:02Z", "00:00:00Z").replace(
        "T00:00:00Z,", "T00:00:05Z,", 1), 2, "finish", "is before arrival"),
    ("ttft.csv", HEADER + ROW.replace(",0.3,", ",9.0,"), 2, "time_to_first_token",
     "longer than the request"),
    ("twice.csv", HEADER + ROW + ROW, 3, "request_id", "q1 repeats line 2"),
    ("long.csv", HEADER + ROW.replace("q1", "q" * 200), 2, "request_id", "at most 128"),
    ("tokens.csv", HEADER + ROW.replace(",10,5", ",-3,5"), 2, "prompt_tokens", "not below 0"),
    ("zone.csv", HEADER + ROW.replace("00:00:00Z", "00:00:00"), 2, "arrival", "no time zone"),
    ("missing.csv", "request_id,tenant\nq1,acme\n", 1, "model", "column is missing"),
    ("bad.jsonl", '{"request_id": "x"\n', 1, "(json)", "not valid JSON"),
    ("field.jsonl", '{"request_id": "x", "colour": "red"}\n', 1, "colour", "unknown field"),
    ("role.jsonl", '{"request_id": "q1", "tenant": "a", "model": "m", "arrival":'
     ' "2026-10-01T00:00:00Z", "finish": "2026-10-01T00:00:01Z", "outcome": "ok",'
     ' "http_status": 200, "role": "encode"}\n', 1, "role", "not one of prefill, decode"),
])
def test_bad_ledger_files_are_named_and_change_nothing(store: Store, tmp_path: Path,
                                                       name: str, content: str, line: int,
                                                       field: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert_rejected(store, "ledger", path, line, field, message)


def test_overlapping_gpu_rows_are_refused_in_the_file_and_against_the_store(
        store: Store, tmp_path: Path) -> None:
    header = "pod,gpu_type,gpu_count,dollars_per_gpu_hour,valid_from,valid_to\n"
    twice = tmp_path / "twice.csv"
    twice.write_text(header + "p,H100,1,2.0,2026-10-01T00:00:00Z,\n"
                     "p,H100,1,3.0,2026-10-10T00:00:00Z,\n")
    assert_rejected(store, "gpus", twice, 3, "valid_from", "overlaps the row from"
                    " 2026-10-01T00:00:00+00:00 (open-ended)")
    run_import(store, IMPORTERS["gpus"], RECON / "gpus.csv")
    later = tmp_path / "later.csv"
    later.write_text(header + "h100-b,H100,2,2.0,2026-10-20T00:00:00Z,\n")
    assert_rejected(store, "gpus", later, 2, "valid_from", "pod h100-b")
    # closing the stored open row with the same key replaces it: no overlap
    closed = tmp_path / "closed.csv"
    closed.write_text(header + "h100-b,H100,2,2.5,2026-10-01T00:00:00Z,2026-10-20T00:00:00Z\n"
                      "h100-b,H100,2,2.0,2026-10-20T00:00:00Z,\n")
    assert run_import(store, IMPORTERS["gpus"], closed).rows == 2


def _commits(store: Store, tmp_path: Path) -> list[str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "a@example.com",
           "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "a@example.com",
           "GIT_AUTHOR_DATE": "2026-10-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2026-10-01T00:00:00Z", "HOME": str(repo),
           "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True, env=env)
    for n in range(3):
        (repo / f"f{n}").write_text(str(n))
        subprocess.run(["git", "-C", str(repo), "add", "."], check=True, env=env)
        subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", str(n)], check=True,
                       env=env)
    run_import(store, IMPORTERS["git"], repo)
    with store.session() as session:
        return sorted(session.exec(select(Commit.sha)).all())


def test_short_shas_resolve_and_ambiguous_ones_are_refused(store: Store,
                                                           tmp_path: Path) -> None:
    shas = _commits(store, tmp_path)
    header = "id,service,environment,result,started,finished,commit_shas\n"
    good = tmp_path / "good.csv"
    good.write_text(header + f"d1,api,production,success,2026-10-02T00:00:00Z,"
                    f"2026-10-02T00:10:00Z,{shas[0][:7]} {shas[1]} deadbeef00\n")
    result = run_import(store, IMPORTERS["deployments"], good)
    with store.session() as session:
        (row,) = session.exec(select(Deployment)).all()
    assert row.commit_shas == f"{shas[0]} {shas[1]} deadbeef00"  # resolved to full SHAs
    assert result.notes == (f"{good}:2: commit_shas: 'deadbeef00' matches no imported"
                            " commit (`llmkpi import git` first); kept as written",)


def test_ambiguous_prefix_in_a_log_is_refused_with_its_line(store: Store,
                                                            tmp_path: Path) -> None:
    when = datetime(2026, 10, 1, tzinfo=UTC)
    with store.session() as session:
        session.add_all([Commit(sha="abcdef1" + digit * 33, repository="r", author="a",
                                authored=when, committed=when) for digit in "01"])
        session.commit()
    path = tmp_path / "log.csv"
    path.write_text("id,service,environment,result,started,finished,commit_shas\n"
                    "d1,api,production,success,2026-10-02T00:00:00Z,2026-10-02T00:10:00Z,"
                    "abcdef1\n")
    assert_rejected(store, "deployments", path, 2, "commit_shas",
                    "'abcdef1' is the prefix of 2 commits")


def test_coverage_reports_are_snapshots_of_a_component(store: Store, tmp_path: Path) -> None:
    for name in ("coverage-sep.xml", "coverage-oct-a.xml", "coverage-oct-b.xml"):
        run_import(store, IMPORTERS["coverage"], RECON / name)
    other = tmp_path / "gateway.xml"
    other.write_text((RECON / "coverage-sep.xml").read_text().replace('"700"', '"600"'))
    run_import(store, CoverageImporter("gateway"), other)  # --component gateway
    with store.session() as session:
        reports = session.exec(select(CoverageReport)).all()
    # three CI machines, one codebase: the source folder's last name is the component
    assert sorted({r.source for r in reports}) == ["gateway", "llm-platform"]
    assert len(reports) == 4


def test_a_store_stays_unchanged_when_an_import_is_refused(store: Store,
                                                           tmp_path: Path) -> None:
    before = dump(store)
    path = tmp_path / "x.csv"
    path.write_text(HEADER + ROW + ROW.replace("q1", "q2").replace(",ok,", ",??,"))
    with pytest.raises(BadInputError):
        run_import(store, IMPORTERS["ledger"], path)
    assert dump(store) == before
