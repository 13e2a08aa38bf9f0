"""Deployments from a deployment log: CSV or JSON, as a CD system or a deploy script writes it.

Columns / keys: `id`, `service`, `environment`, `result` (success | failure), `started`,
`finished`, `commit_shas` (space-separated in CSV, a list or a string in JSON). Results as
DevLake reads them: `failed`, `error` and `rollback` count as failure; `succeeded`, `ok` as
success.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel, select

from collectors.importers.base import (
    BadInputError,
    Cells,
    Unique,
    iso_time,
    json_items,
    line_of,
    read_csv,
)
from collectors.shas import ShaIndex
from collectors.store import Store
from collectors.tables import Commit, Deployment

RESULTS = {"success": "success", "succeeded": "success", "ok": "success",
           "failure": "failure", "failed": "failure", "error": "failure",
           "rollback": "failure", "rolled_back": "failure"}
SHA_CHARS = set("0123456789abcdef")


def check_shas(fail: Callable[[str, str], BadInputError], shas: list[str]) -> str:
    for sha in shas:
        if not 7 <= len(sha) <= 64 or set(sha.lower()) - SHA_CHARS:
            raise fail("commit_shas", f"{sha!r} is not a commit SHA")
    return " ".join(s.lower() for s in shas)


def result_of(fail: Callable[[str, str], BadInputError], value: str) -> str:
    result = RESULTS.get(value.strip().lower())
    if result is None:
        raise fail("result", f"{value!r} is not one of success, failure (or {', '.join(RESULTS)})")
    return result


class DeploymentsImporter:
    kind = "deployments"
    columns = ("id", "service", "environment", "result", "started", "finished", "commit_shas")

    def __init__(self) -> None:
        self._where: dict[str, tuple[Path, int, str]] = {}  # id -> file, line, field
        self._index: ShaIndex | None = None

    def load(self, path: Path) -> Iterator[SQLModel]:
        self._where, self._index = {}, None
        if path.suffix.lower() == ".json":
            yield from self._json(path)
            return
        unique = Unique("id")
        for cells in read_csv(path, self.columns):
            deployment_id = cells.text("id")
            unique.check(cells, deployment_id)
            self._where[deployment_id] = (path, cells.line, "commit_shas")
            yield self._row(cells)
        unique.finish()

    def against_store(self, store: Store, rows: list[SQLModel]) -> list[str]:
        """Resolve each SHA by unique prefix against the stored commits: an ambiguous one
        refuses the file; an unknown one is kept as written and reported (lead time resolves
        again once the git history is imported, and counts what stays unknown)."""
        if self._index is None:  # once per import: the first batch of a file reads it
            with store.session() as session:
                self._index = ShaIndex(session.exec(select(Commit.sha)).all())
        index = self._index
        notes = []
        for row in rows:
            assert isinstance(row, Deployment)
            path, line, field = self._where.get(row.id, (Path("?"), 0, "commit_shas"))
            full = []
            for written in row.commit_shas.split():
                found = index.resolve(written)
                if found.status == "ambiguous":
                    raise BadInputError(path, line, field, f"{written!r} is the prefix of"
                                        f" {found.matches} commits: give more digits")
                if found.status == "unknown":
                    notes.append(f"{path}:{line}: {field}: {written!r} matches no imported"
                                 " commit (`llmkpi import git` first); kept as written")
                full.append(found.sha)
            row.commit_shas = " ".join(full)
        return notes

    def _row(self, cells: Cells) -> Deployment:
        started, finished = cells.moment("started"), cells.moment("finished")
        assert started is not None and finished is not None
        if finished < started:
            raise cells.fail("finished", f"{finished.isoformat()} is before started")
        return Deployment(
            id=cells.text("id"), service=cells.text("service"),
            environment=cells.text("environment").lower(),
            result=result_of(cells.fail, cells.text("result")), started=started,
            finished=finished,
            commit_shas=check_shas(cells.fail, cells.text("commit_shas", optional=True).split()))

    def _json(self, path: Path) -> list[SQLModel]:
        text, items = json_items(path, "deployments")
        rows: list[SQLModel] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            rows.append(self._json_row(path, text, index, item, seen))
        return rows

    def _json_row(self, path: Path, text: str, index: int, item: Any,
                  seen: set[str]) -> Deployment:
        line = line_of(text, item)

        def fail(field: str, problem: str) -> BadInputError:
            return BadInputError(path, line, f"deployments[{index}].{field}", problem)

        if not isinstance(item, dict):
            raise fail("(item)", "is not an object")
        cells = {key: str(item.get(key) or "") for key in self.columns if key != "commit_shas"}
        for key, value in cells.items():
            if not value:
                raise fail(key, "is missing")
        if cells["id"] in seen:
            raise fail("id", f"{cells['id']} appears twice")
        seen.add(cells["id"])
        self._where[cells["id"]] = (path, line, f"deployments[{index}].commit_shas")
        started = iso_time(fail, "started", cells["started"])
        finished = iso_time(fail, "finished", cells["finished"])
        if finished < started:
            raise fail("finished", f"{finished.isoformat()} is before started")
        shas = item.get("commit_shas") or []
        if isinstance(shas, str):
            shas = shas.split()
        if not isinstance(shas, list):
            raise fail("commit_shas", "expected a list of SHAs")
        return Deployment(id=cells["id"], service=cells["service"],
                          environment=cells["environment"].lower(),
                          result=result_of(fail, cells["result"]), started=started,
                          finished=finished, commit_shas=check_shas(fail, [str(s) for s in shas]))

