"""What every importer shares: strict, streaming CSV and line reading, typed cells with
precise errors, and the all-or-nothing, idempotent write.

Memory stays bounded whatever a file's size: lines are read and written a batch at a time
inside one transaction (a bad line anywhere rolls back the whole file), and the keys seen so
far spill to a private on-disk SQLite table (`Unique`). Whole-document formats (a JSON
object, a JUnit or coverage XML file) are parsed at once and so are refused above
MAX_DOCUMENT_BYTES, with the line-based format to use instead.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from sqlmodel import Session, SQLModel, select

from collectors.store import Store
from collectors.tables import ImportLog

Progress = Callable[[int], None]  # rows written so far
BATCH = 1000
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
MAX_NOTES = 100


class BadInputError(ValueError):
    """A user's file is wrong: says which file, line and field, and why."""

    def __init__(self, path: Path, line: int, field: str, problem: str) -> None:
        super().__init__(f"{path}:{line}: field {field!r}: {problem}")
        self.path, self.line, self.field, self.problem = path, line, field, problem


class Importer(Protocol):
    kind: str

    def load(self, path: Path) -> Iterable[SQLModel]: ...


def decode_utf8(path: Path, instead: str = "split it into smaller files") -> str:
    """A whole document as text, for the formats that are parsed at once (JSON, XML)."""
    raw = document_bytes(path, instead)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BadInputError(path, line, "(bytes)", f"not UTF-8: byte 0x{raw[exc.start]:02x} at"
                       f" offset {exc.start}") from None


def document_bytes(path: Path, instead: str = "split it into smaller files") -> bytes:
    """A file parsed at once, refused above MAX_DOCUMENT_BYTES (its parse takes many times
    its size in memory), saying what to do instead."""
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise BadInputError(path, 1, "(file)", f"is {size / 2**20:.0f} MiB; a whole-document"
                            f" file is read at once, so at most {MAX_DOCUMENT_BYTES // 2**20}"
                            f" MiB: {instead}")
    return path.read_bytes()


def text_lines(path: Path) -> Iterator[str]:
    """A file's lines, decoded one at a time (line endings kept, as csv wants them); a byte
    that is not UTF-8 names its line and offset."""
    offset = 0
    with path.open("rb") as file:
        for number, raw in enumerate(file, 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                raise BadInputError(path, number, "(bytes)", f"not UTF-8: byte"
                                    f" 0x{raw[exc.start]:02x} at offset {bad}") from None
            offset += len(raw)
            yield text


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
    text = decode_utf8(path, "export it as CSV instead, which is read a line at a time")
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
    reader = csv.DictReader(text_lines(path))
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
    """Refuses a key seen twice in one file, in memory bounded whatever the file's size: the
    newest keys are held in a dict; every CHUNK of them moves to a private on-disk SQLite
    table (deleted when closed), checked against it a chunk at a time. A repeat of a key
    that has moved is therefore found at the end of its chunk: still before the import
    commits. Call `finish()` after the last row."""

    CHUNK = 50_000

    def __init__(self, field: str) -> None:
        self.field = field
        self.recent: dict[str, int] = {}
        self.path: Path | None = None
        self._moved: sqlite3.Connection | None = None

    def check(self, cells: Cells, key: object) -> None:
        self.check_at(cells.path, cells.line, key)

    def check_at(self, path: Path, line: int, key: object) -> None:
        text, self.path = str(key), path
        if text in self.recent:
            raise BadInputError(path, line, self.field, f"{text} repeats line"
                                f" {self.recent[text]}")
        self.recent[text] = line
        if len(self.recent) >= self.CHUNK:
            self._move()

    def finish(self) -> None:
        if self._moved is not None:
            self._compare()
            self._moved.close()
            self._moved = None
        self.recent = {}

    def _compare(self) -> None:
        assert self._moved is not None and self.path is not None
        texts = list(self.recent)
        for start in range(0, len(texts), 500):
            part = texts[start:start + 500]
            marks = ",".join("?" * len(part))
            for text, earlier in self._moved.execute(
                    f"SELECT key, line FROM seen WHERE key IN ({marks}) ORDER BY line", part):
                raise BadInputError(self.path, self.recent[text], self.field,
                                    f"{text} repeats line {earlier}")

    def _move(self) -> None:
        if self._moved is None:
            self._moved = sqlite3.connect("")  # "" = a private temporary file
            self._moved.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, line INTEGER)")
        else:
            self._compare()
        self._moved.executemany("INSERT INTO seen VALUES (?, ?)", self.recent.items())
        self.recent = {}


@dataclass(frozen=True)
class ImportResult:
    kind: str
    path: Path
    rows: int  # rows read from the input; a repeated natural key counts, is stored once
    already_imported: bool
    notes: tuple[str, ...] = ()  # `file:line: field: problem` kept but worth knowing


def file_hash(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


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


def batches(rows: Iterable[SQLModel], size: int = BATCH) -> Iterator[list[SQLModel]]:
    batch: list[SQLModel] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_import(store: Store, importer: Importer, path: Path,
               progress: Progress | None = None) -> ImportResult:
    """Validate and write the input a batch at a time in one transaction: a bad row anywhere
    rolls the whole file back, so the store is as it was. Rows with a surrogate id are
    inserted, skipping those whose unique key is stored already; rows keyed by their
    natural key replace the stored one (a later line of the file replaces an earlier)."""
    digest = fingerprint(importer, path)
    if digest is not None:
        with store.session() as session:
            done = session.exec(select(ImportLog).where(ImportLog.kind == importer.kind,
                                                        ImportLog.sha256 == digest)).first()
        if done is not None:
            return ImportResult(importer.kind, path, done.rows, already_imported=True)
    # an importer that checks its rows against what is stored (overlapping price rows,
    # commit prefixes) does so batch by batch before each write, and may return notes
    against = getattr(importer, "against_store", None)
    notes: list[str] = []
    more_notes = written = 0
    with store.session() as session:
        for batch in batches(importer.load(path)):  # raises BadInputError on a bad line
            for note in (against(store, batch) if against is not None else []):
                if len(notes) < MAX_NOTES:
                    notes.append(note)
                else:
                    more_notes += 1
            _write(store, session, batch)
            written += len(batch)
            if progress is not None:
                progress(written)
        session.add(ImportLog(kind=importer.kind, path=location(path), sha256=digest or "",
                              rows=written, imported=datetime.now(UTC)))
        session.commit()
    if more_notes:
        notes.append(f"... and {more_notes} more notes like these")
    # derived tables follow what was written (the ledger's hourly roll-ups)
    after = getattr(importer, "after_import", None)
    if after is not None:
        after(store)
    return ImportResult(importer.kind, path, written, already_imported=False,
                        notes=tuple(notes))


def _write(store: Store, session: Session, batch: list[SQLModel]) -> None:
    surrogate: dict[type[SQLModel], list[dict[str, Any]]] = {}
    keyed: dict[type[SQLModel], list[dict[str, Any]]] = {}
    for row in batch:
        if getattr(row, "id", "") is None:
            surrogate.setdefault(type(row), []).append(row.model_dump(exclude={"id"}))
        else:
            keyed.setdefault(type(row), []).append(row.model_dump())
    for model, dumped in surrogate.items():
        store.insert_ignore(session, model, dumped)
    for model, dumped in keyed.items():
        store.upsert(session, model, dumped)
