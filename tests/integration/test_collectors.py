"""Importers for git, deployment logs, Jira, releases, revenue, integrations and Prometheus, on
both databases; the schema migration from the previous revision."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel, select

from collectors.importers.base import run_import
from collectors.importers.git import GitError, GitImporter
from collectors.importers.jira import WorkItemsImporter
from collectors.importers.ours import IMPORTERS
from collectors.importers.prometheus import PrometheusError, PrometheusImporter
from collectors.store import Store
from collectors.tables import (
    Commit,
    Deployment,
    EngineSnapshotRow,
    IntegrationAttempt,
    Person,
    Release,
    TenantRevenue,
    WorkItem,
)
from llmkpi.imports import engine_series
from llmkpi.loadgen import LoadSpec, run_load
from tests.integration.helpers import prometheus, sidecar, simulator
from tests.integration.store_fixtures import dump
from tests.integration.test_store import DATA, ROOT, assert_rejected

pytestmark = pytest.mark.integration


def not_a_partition(name: str | None, kind: str, _parent: Any) -> bool:
    """The ledger's day partitions on PostgreSQL (migration 0012) are its storage, not
    tables of the schema."""
    return not (kind == "table" and re.fullmatch(r"ledger_(p\d{8}|default)", name or ""))


def test_migrations_build_exactly_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": not_a_partition})
        diffs = compare_metadata(context, SQLModel.metadata)
    if store.engine.dialect.name == "postgresql":
        # a partitioned table's unique key must hold the partition column: (source,
        # request_id, arrival) there, (source, request_id) in the model and on SQLite
        keys = sorted((kind, tuple(c.name for c in constraint.columns))
                      for kind, constraint in diffs)
        assert keys == [("add_constraint", ("source", "request_id")),
                        ("remove_constraint", ("source", "request_id", "arrival"))]
        return
    assert diffs == []


def test_a_store_at_the_previous_revision_keeps_its_rows(tmp_path: Path) -> None:
    old = Store.open(str(tmp_path / "old.sqlite"), migrate=False)
    old.upgrade("0001")
    with old.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO engine_snapshot (taken, engine, model, pod, up, kv_cache_usage)"
            " VALUES ('2026-10-01 00:00:00+00:00', 'e', 'm', '', 1, 0.5)"))
        conn.execute(text("INSERT INTO person (person, team, tech, hired, exited, hourly_rate)"
                          " VALUES ('ana', 'inference', 1, '2024-01-01', NULL, 95.0)"))
    old.close()
    store = Store.open(str(tmp_path / "old.sqlite"))
    assert store.revision() == "0012"
    with store.session() as session:
        (row,) = session.exec(select(EngineSnapshotRow)).all()
        (person,) = session.exec(select(Person)).all()
    assert row.kv_cache_usage == 0.5
    assert (person.person, person.team, person.hourly_rate) == ("ana", "inference", 95.0)


# -- git ---------------------------------------------------------------------------------------

def git(repo: Path, *args: str, when: str = "2026-10-01T10:00:00+02:00") -> str:
    env = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_NAME": "Ada",
           "GIT_AUTHOR_EMAIL": "ada@example.com", "GIT_COMMITTER_NAME": "Ada",
           "GIT_COMMITTER_EMAIL": "ada@example.com", "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env=env)
    return done.stdout.strip()


def commit(repo: Path, name: str, when: str) -> str:
    (repo / name).write_text(name)
    git(repo, "add", name, when=when)
    git(repo, "commit", "-q", "-m", f"add {name}", when=when)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "inference"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def test_git_history_and_tag_deployments(store: Store, repo: Path) -> None:
    first = commit(repo, "a", "2026-10-01T10:00:00+02:00")
    second = commit(repo, "b", "2026-10-02T11:00:00+02:00")
    git(repo, "tag", "-a", "v1.0", "-m", "release", when="2026-10-02T12:00:00Z")
    third = commit(repo, "c", "2026-10-03T09:00:00Z")
    git(repo, "tag", "v1.1", when="2026-10-03T09:30:00Z")  # lightweight: the commit's time
    git(repo, "tag", "experiment")
    importer = GitImporter("v*")
    result = run_import(store, importer, repo)
    assert result.rows == 5
    with store.session() as session:
        commits = {c.sha: c for c in session.exec(select(Commit)).all()}
        deployments = session.exec(select(Deployment).order_by(Deployment.started)).all()
    assert set(commits) == {first, second, third}
    assert commits[first].authored.astimezone(UTC) == datetime(2026, 10, 1, 8, tzinfo=UTC)
    assert commits[first].repository == "inference" and commits[first].subject == "add a"
    assert [d.id for d in deployments] == ["inference@v1.0", "inference@v1.1"]
    assert set(deployments[0].commit_shas.split()) == {first, second}
    assert deployments[1].commit_shas == third
    assert deployments[0].started.astimezone(UTC) == datetime(2026, 10, 2, 12, tzinfo=UTC)
    assert deployments[1].started.astimezone(UTC) == datetime(2026, 10, 3, 9, tzinfo=UTC)
    assert {d.environment for d in deployments} == {"production"}
    assert {d.result for d in deployments} == {"success"}

    before = dump(store)
    assert run_import(store, GitImporter("v*"), repo).already_imported
    assert dump(store) == before
    commit(repo, "d", "2026-10-04T09:00:00Z")  # new history: read again, old rows merge
    assert run_import(store, GitImporter("v*"), repo).rows == 6


def test_a_folder_that_is_not_a_repository_is_one_clear_error(store: Store,
                                                              tmp_path: Path) -> None:
    before = dump(store)
    with pytest.raises(GitError, match="not a git repository"):
        run_import(store, GitImporter(), tmp_path)
    with pytest.raises(GitError, match="not a directory"):
        run_import(store, GitImporter(), tmp_path / "missing")
    assert dump(store) == before


# -- deployment logs ---------------------------------------------------------------------------

def test_deployment_log_csv_and_json(store: Store) -> None:
    run_import(store, IMPORTERS["deployments"], DATA / "deployments.csv")
    run_import(store, IMPORTERS["deployments"], DATA / "deployments.json")
    with store.session() as session:
        rows = {d.id: d for d in session.exec(select(Deployment)).all()}
    assert len(rows) == 6
    assert rows["deploy-2026-10-01-1"].commit_shas == "3f2a9c1 8be04d7"
    assert rows["deploy-2026-10-03-1"].result == "failure"  # "failed"
    assert rows["deploy-2026-10-03-2"].result == "failure"  # "rollback"
    assert rows["deploy-2026-10-04-1"].result == "success"  # "succeeded"
    assert rows["gh-run-8841"].environment == "production"  # "Production"
    assert rows["gh-run-8850"].started.astimezone(UTC) == datetime(2026, 10, 7, 14, 30,
                                                                   tzinfo=UTC)
    assert rows["gh-run-8850"].commit_shas == "7f7f7f7f"


HEADER = "id,service,environment,result,started,finished,commit_shas\n"
OK_ROW = "d1,inference,production,success,2026-10-01T09:00:00Z,2026-10-01T09:10:00Z,abcdef1\n"


@pytest.mark.parametrize(("name", "content", "line", "field", "message"), [
    ("order.csv", HEADER + OK_ROW.replace("09:10", "08:10"), 2, "finished", "is before started"),
    ("result.csv", HEADER + OK_ROW.replace("success", "meh"), 2, "result", "'meh' is not one"),
    ("sha.csv", HEADER + OK_ROW.replace("abcdef1", "xyz"), 2, "commit_shas",
     "'xyz' is not a commit SHA"),
    ("twice.csv", HEADER + OK_ROW + OK_ROW, 3, "id", "d1 repeats line 2"),
    ("zone.csv", HEADER + OK_ROW.replace("09:00:00Z", "09:00:00"), 2, "started", "no time zone"),
    ("missing.csv", "id,service\nd1,x\n", 1, "environment", "column is missing"),
    ("nofield.json", '{"deployments": [\n {"id": "d9", "service": "s"}\n]}', 2,
     "deployments[0].environment", "is missing"),
])
def test_bad_deployment_logs_are_named(store: Store, tmp_path: Path, name: str, content: str,
                                       line: int, field: str, message: str) -> None:
    run_import(store, IMPORTERS["deployments"], DATA / "deployments.csv")
    path = tmp_path / name
    path.write_text(content)
    assert_rejected(store, "deployments", path, line, field, message)


# -- Jira work items -----------------------------------------------------------------------------

def test_jira_export_round_trip(store: Store) -> None:
    run_import(store, WorkItemsImporter("Europe/Berlin"), DATA / "jira-export.csv")
    run_import(store, IMPORTERS["releases"], DATA / "releases.csv")
    with store.session() as session:
        items = {w.id: w for w in session.exec(select(WorkItem)).all()}
        releases = {r.name: r for r in session.exec(select(Release)).all()}
    assert len(items) == 6
    assert {k: w.type for k, w in items.items()} == {
        "LLM-101": "feature", "LLM-102": "defect", "LLM-103": "debt",  # a task labelled debt
        "LLM-104": "idea", "LLM-105": "defect", "LLM-106": "debt"}
    story = items["LLM-101"]
    assert story.created.astimezone(UTC) == datetime(2026, 9, 1, 7, 15, tzinfo=UTC)  # CEST
    assert story.hours_spent == 16 and story.points == 5 and story.release == "2026.10"
    assert items["LLM-103"].labels == "tech-debt cleanup" and items["LLM-103"].resolved is None
    assert items["LLM-105"].release == "2026.11"  # the first of several fix versions
    assert items["LLM-104"].points is None and items["LLM-104"].status == "Discovery"
    history = json.loads(items["LLM-106"].status_history)
    assert [h[0] for h in history] == ["Created", "Done"]
    assert json.loads(items["LLM-103"].status_history)[1] == ["In Progress", None]
    assert releases["2026.10"].target == date(2026, 10, 15)
    assert releases["2026.10"].released == date(2026, 10, 17)
    assert releases["2026.11"].released is None


JIRA = "Issue key,Issue Type,Status,Created,Resolved\n"


@pytest.mark.parametrize(("content", "line", "field", "message"), [
    (JIRA + "A-1,Saga,Done,01/Sep/26 9:15 AM,\n", 2, "Issue Type", "'Saga' is not a known"),
    (JIRA + "A-1,Bug,Done,01/Sep/26 9:15 AM,31/Aug/26 9:15 AM\n", 2, "Resolved",
     "is before Created"),
    (JIRA + "A-1,Bug,Done,yesterday,\n", 2, "Created", "'yesterday' is not a Jira time"),
    (JIRA + "A-1,Bug,Done,01/Sep/26 9:15 AM,\nA-1,Bug,Done,01/Sep/26 9:15 AM,\n", 3,
     "Issue key", "A-1 repeats line 2"),
    ("Issue key,Status,Created\nA-1,Done,01/Sep/26 9:15 AM\n", 1, "Issue Type",
     "column is missing"),
])
def test_bad_jira_exports_are_named(store: Store, tmp_path: Path, content: str, line: int,
                                    field: str, message: str) -> None:
    path = tmp_path / "jira.csv"
    path.write_text(content)
    assert_rejected(store, "work-items", path, line, field, message)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        WorkItemsImporter("Mars/Base")


# -- our small CSVs ------------------------------------------------------------------------------

def test_tenant_revenue_and_integrations_round_trip(store: Store, tmp_path: Path) -> None:
    run_import(store, IMPORTERS["tenant-revenue"], DATA / "tenant-revenue.csv")
    run_import(store, IMPORTERS["integrations"], DATA / "integrations.csv")
    with store.session() as session:
        revenue = session.exec(select(TenantRevenue)).all()
        attempts = {a.id: a for a in session.exec(select(IntegrationAttempt)).all()}
    assert sum(r.revenue for r in revenue if r.month == date(2026, 10, 1)) == 68750
    assert [attempts[k].success for k in sorted(attempts)] == [True, False, True, True]
    twice = tmp_path / "twice.csv"
    twice.write_text("month,tenant,revenue\n2026-10,acme,1\n2026-10,acme,2\n")
    assert_rejected(store, "tenant-revenue", twice, 3, "tenant", "repeats line 2")
    late = tmp_path / "late.csv"
    late.write_text("name,target,released\n2026.10,2026-13-01,\n")
    assert_rejected(store, "releases", late, 2, "target", "is not a date")


# -- Prometheus ----------------------------------------------------------------------------------

def test_prometheus_range_import(store: Store, tmp_path: Path) -> None:
    with simulator(tmp_path, profile="demo-small-cache", seed=3) as upstream, \
            sidecar(tmp_path, upstream) as proc, \
            prometheus(tmp_path, {"vllm": upstream.split("/")[2],
                                  "sidecar": proc.metrics_url.split("/")[2]}) as prom:
        prom.wait_scraped("vllm")
        prom.wait_scraped("sidecar")
        start = datetime.now(UTC)
        spec = LoadSpec(target=proc.url, tenants=2, rps=8, duration=6, seed=3,
                        prompt_median=400, output_median=60)
        asyncio.run(run_load(spec, progress_out=None))
        time.sleep(2.5)  # two more scrapes
        end = datetime.now(UTC)
        lines: list[str] = []
        importer = PrometheusImporter(engine_series(), start=start, end=end, step=1,
                                      progress=lines.append)
        result = run_import(store, importer, Path(prom.url))
        before = dump(store)
        again = run_import(store, importer, Path(prom.url))
        after = dump(store)
        assert again.rows == result.rows and not again.already_imported  # read again...
        assert [r[2] for r in after.pop("import_log")] == [prom.url, prom.url]  # ...and logged
        before.pop("import_log")
        assert after == before  # but the same readings add no rows
        sidecar_only = PrometheusImporter(
            {"kv_cache_usage": ("llmkpi_engine_kv_cache_usage_ratio",)}, start=start, end=end,
            step=1)
        assert sidecar_only.load(Path(prom.url))  # the sidecar's own names are readable too
        with pytest.raises(PrometheusError, match="no engine series"):
            PrometheusImporter({"kv_cache_usage": ("no_such_metric",)}, start=start, end=end,
                               step=1).load(Path(prom.url))
        with pytest.raises(PrometheusError, match="bad_data"):
            PrometheusImporter({"kv_cache_usage": ("up{",)}, start=start, end=end,
                               step=1).load(Path(prom.url))
    with store.session() as session:
        rows = session.exec(select(EngineSnapshotRow)).all()
    assert result.rows == len(rows) >= 6
    assert max(r.kv_cache_usage or 0 for r in rows) > 0.3  # vLLM's names, read first
    assert max(r.requests_running or 0 for r in rows) >= 1
    assert any(r.preemptions_total is not None for r in rows)
    assert "unknown" not in {r.model for r in rows}  # vLLM's model_name label
    assert any("vllm:kv_cache_usage_perc" in line for line in lines)


def test_unreachable_prometheus_is_one_clear_error(store: Store) -> None:
    now = datetime.now(UTC)
    importer = PrometheusImporter(engine_series(), start=now - timedelta(hours=1), end=now)
    before = dump(store)
    with pytest.raises(PrometheusError, match="cannot reach Prometheus"):
        run_import(store, importer, Path("http://127.0.0.1:9"))
    assert dump(store) == before
    with pytest.raises(ValueError, match="is not after --start"):
        PrometheusImporter(engine_series(), start=now, end=now)


# -- the command ---------------------------------------------------------------------------------

def test_import_command_for_git_and_errors(repo: Path, tmp_path: Path) -> None:
    commit(repo, "a", "2026-10-01T10:00:00Z")
    git(repo, "tag", "v1")
    cli = str(ROOT / ".venv" / "bin" / "llmkpi")
    database = str(tmp_path / "cli.sqlite")
    done = subprocess.run([cli, "import", "git", str(repo), "--tags", "v*", "--deployments",
                           str(DATA / "deployments.csv"), "--database", database],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "imported 2 git rows" in done.stdout and "imported 4 deployments rows" in done.stdout
    for args, message in [
        (["git", str(tmp_path)], "not a git repository"),
        (["work-items", str(DATA / "jira-export.csv"), "--timezone", "Nowhere"],
         "unknown time zone"),
        (["prometheus", "http://127.0.0.1:9", "--start", "2026-10-02", "--end", "2026-10-01"],
         "is not after --start"),
        (["prometheus", "http://127.0.0.1:9"], "cannot reach Prometheus"),
        (["jira", "x"], "unknown import kind 'jira'"),
    ]:
        bad = subprocess.run([cli, "import", *args, "--database", database],
                             capture_output=True, text=True, check=False)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
        assert message in bad.stderr, bad.stderr
