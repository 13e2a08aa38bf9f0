"""What every importer shares: strict CSV reading, typed cells with precise errors, and the
all-or-nothing, idempotent write.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from sqlmodel import SQLModel, select

from collectors.store import Store
from collectors.tables import ImportLog

Progress = Callable[[int, int], None]


class BadInputError(ValueError):
    """A user's file is wrong: says which file, line and field, and why."""

    def __init__(self, path: Path, line: int, field: str, problem: str) -> None:
        super().__init__(f"{path}:{line}: field {field!r}: {problem}")
        self.path, self.line, self.field, self.problem = path, line, field, problem


class Importer(Protocol):
    kind: str

    def load(self, path: Path) -> list[SQLModel]: ...


def decode_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BadInputError(path, line, "(bytes)", f"not UTF-8: byte 0x{raw[exc.start]:02x} at"
                       f" offset {exc.start}") from None


def iso_time(fail: Callable[[str, str], BadInputError], field: str, value: str) -> datetime:
    """An ISO 8601 time with a zone, in UTC; a missing zone or a bad time names the field."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise fail(field, f"{value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise fail(field, f"{value!r} has no time zone (add Z or +00:00)")
    return parsed.astimezone(UTC)


def json_items(path: Path, key: str) -> tuple[str, list[Any]]:
    """A JSON file holding a list, or an object with the list under `key`."""
    text = decode_utf8(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(path, exc.lineno, "(json)", exc.msg) from None
    items = doc.get(key) if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise BadInputError(path, 1, key, f"expected a list of {key}")
    return text, items


def line_of(text: str, item: Any) -> int:
    """The line where an item's id appears, so an error points into the file."""
    ident = item.get("id") if isinstance(item, dict) else None
    if not ident:
        return 1
    position = text.find(json.dumps(str(ident)))
    return text.count("\n", 0, position) + 1 if position >= 0 else 1


class Cells:
    """Typed access to one CSV row; every error names the file, line and column."""

    def __init__(self, path: Path, line: int, row: dict[str, str]) -> None:
        self.path, self.line, self.row = path, line, row

    def fail(self, field: str, problem: str) -> BadInputError:
        return BadInputError(self.path, self.line, field, problem)

    def text(self, field: str, *, optional: bool = False) -> str:
        value = (self.row.get(field) or "").strip()
        if not value and not optional:
            raise self.fail(field, "is empty")
        return value

    def choice(self, field: str, choices: Sequence[str]) -> str:
        value = self.text(field).lower()
        if value not in choices:
            raise self.fail(field, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, field: str, *, minimum: int | None = 0) -> int:
        value = self.text(field)
        try:
            number = int(value)
        except ValueError:
            raise self.fail(field, f"{value!r} is not a whole number") from None
        if minimum is not None and number < minimum:
            raise self.fail(field, f"{number} is below {minimum}")
        return number

    def number(self, field: str, *, minimum: float | None = 0.0, optional: bool = False
               ) -> float | None:
        value = self.text(field, optional=optional)
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            raise self.fail(field, f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise self.fail(field, f"{value!r} is not a finite number")
        if minimum is not None and number < minimum:
            raise self.fail(field, f"{number:g} is below {minimum:g}")
        return number

    def amount(self, field: str, *, minimum: float | None = 0.0) -> float:
        value = self.number(field, minimum=minimum)
        assert value is not None
        return value

    def flag(self, field: str) -> bool:
        value = self.text(field).lower()
        if value in ("true", "yes", "1", "y"):
            return True
        if value in ("false", "no", "0", "n"):
            return False
        raise self.fail(field, f"{value!r} is not true/false")

    def day(self, field: str, *, optional: bool = False) -> date | None:
        value = self.text(field, optional=optional)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(field, f"{value!r} is not a date (YYYY-MM-DD)") from None

    def month(self, field: str) -> date:
        value = self.text(field)
        try:
            return date.fromisoformat(value + "-01" if len(value) == 7 else value).replace(day=1)
        except ValueError:
            raise self.fail(field, f"{value!r} is not a month (YYYY-MM)") from None

    def moment(self, field: str, *, optional: bool = False) -> datetime | None:
        value = self.text(field, optional=optional)
        return iso_time(self.fail, field, value) if value else None


def read_csv(path: Path, required: Sequence[str]) -> Iterator[Cells]:
    reader = csv.DictReader(io.StringIO(decode_utf8(path), newline=""))
    header = reader.fieldnames or []
    for column in required:
        if column not in header:
            raise BadInputError(path, 1, column, "column is missing from the header")
    for row in reader:
        if None in row:  # more cells than header columns
            raise BadInputError(path, reader.line_num, "(row)", "has more cells than the header")
        if any(value is None for value in row.values()):  # fewer: a truncated row
            given = sum(value is not None for value in row.values())
            raise BadInputError(path, reader.line_num, "(row)", f"has {given} cells, the"
                                f" header {len(header)}: a truncated row")
        yield Cells(path, reader.line_num, row)


class Unique:
    """Refuses a key seen twice in one file."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.seen: dict[object, int] = {}

    def check(self, cells: Cells, key: object) -> None:
        if key in self.seen:
            raise cells.fail(self.field, f"{key} repeats line {self.seen[key]}")
        self.seen[key] = cells.line


@dataclass(frozen=True)
class ImportResult:
    kind: str
    path: Path
    rows: int
    already_imported: bool
    notes: tuple[str, ...] = ()  # `file:line: field: problem` kept but worth knowing


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def location(path: Path) -> str:
    """The source as the user wrote it: Path folds `http://host` to `http:/host`."""
    text = str(path)
    scheme, sep, rest = text.partition(":/")
    if sep and scheme.isalpha() and not rest.startswith("/"):
        return f"{scheme}://{rest}"
    return text


def fingerprint(importer: Importer, path: Path) -> str | None:
    """The file's content hash; an importer whose input is not one file (a repository, a
    Prometheus server) names its own with a `fingerprint(path)` method (None: always read it
    again; its rows then skip what the store already has)."""
    custom = getattr(importer, "fingerprint", None)
    if custom is not None:
        return cast("str | None", custom(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return file_hash(path)


def run_import(store: Store, importer: Importer, path: Path,
               progress: Progress | None = None) -> ImportResult:
    """Validate the whole input, then write it in one transaction (merge by natural key)."""
    digest = fingerprint(importer, path)
    if digest is not None:
        with store.session() as session:
            done = session.exec(select(ImportLog).where(ImportLog.kind == importer.kind,
                                                        ImportLog.sha256 == digest)).first()
        if done is not None:
            return ImportResult(importer.kind, path, done.rows, already_imported=True)
    rows = importer.load(path)  # raises BadInputError before anything is written
    # an importer that checks its rows against what is stored (overlapping price rows,
    # commit prefixes) does so before the write, and may return notes to show
    against = getattr(importer, "against_store", None)
    notes: list[str] = list(against(store, rows)) if against is not None else []
    # Rows with a surrogate id are inserted in batches, skipping those whose unique key is
    # stored already; rows keyed by their natural key merge.
    surrogate: dict[type[SQLModel], list[dict[str, Any]]] = {}
    keyed = []
    for row in rows:
        if getattr(row, "id", "") is None:
            surrogate.setdefault(type(row), []).append(row.model_dump(exclude={"id"}))
        else:
            keyed.append(row)
    written = 0
    with store.session() as session:
        for model, dumped in surrogate.items():
            for start in range(0, len(dumped), 1000):
                store.insert_ignore(session, model, dumped[start:start + 1000])
                written += len(dumped[start:start + 1000])
                if progress is not None:
                    progress(written, len(rows))
        for index, row in enumerate(keyed, written + 1):
            session.merge(row)
            if progress is not None and (index % 1000 == 0 or index == len(rows)):
                progress(index, len(rows))
        session.add(ImportLog(kind=importer.kind, path=location(path), sha256=digest or "",
                              rows=len(rows), imported=datetime.now(UTC)))
        session.commit()
    # derived tables follow what was written (the ledger's hourly roll-ups)
    after = getattr(importer, "after_import", None)
    if after is not None:
        after(store)
    return ImportResult(importer.kind, path, len(rows), already_imported=False,
                        notes=tuple(notes))
