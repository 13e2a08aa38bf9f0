"""Work items from a Jira CSV export ("Export > CSV (all fields)" of an issue search).

Jira writes one column per value for multi-valued fields (`Labels`, `Labels`, ...; `Fix
Version/s` likewise), times in the exporting user's zone without a marker, in the format
`dd/MMM/yy h:mm AM` unless the site changed it, and `Time Spent` in seconds. Story points sit
in a custom field whose header names it. The status history is not in the CSV: it is
rebuilt as created -> current status (at resolution when resolved, time unknown otherwise).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import SQLModel

from collectors.importers.base import BadInputError, Unique, text_lines
from collectors.tables import WorkItem

POINTS_COLUMNS = ("Story Points", "Custom field (Story Points)",
                  "Custom field (Story point estimate)", "Story point estimate")
TYPES = {"bug": "defect", "defect": "defect", "incident": "defect",
         "technical debt": "debt", "tech debt": "debt", "debt": "debt",
         "idea": "idea", "story": "feature", "feature": "feature", "new feature": "feature",
         "epic": "feature", "improvement": "feature", "task": "task", "sub-task": "task",
         "subtask": "task", "spike": "task"}
DEBT_LABELS = {"tech-debt", "techdebt", "technical-debt", "debt"}
TIME_FORMATS = ("%d/%b/%y %I:%M %p", "%d/%b/%Y %I:%M %p", "%Y-%m-%d %H:%M", "%d/%b/%y %H:%M")


class JiraRow:
    """One CSV line; repeated headers give lists; errors name file, line and column."""

    def __init__(self, path: Path, line: int, header: list[str], cells: list[str],
                 zone: ZoneInfo) -> None:
        self.path, self.line, self.zone = path, line, zone
        self.values: dict[str, list[str]] = {}
        for name, value in zip(header, cells, strict=False):
            if value.strip():
                self.values.setdefault(name, []).append(value.strip())

    def fail(self, field: str, problem: str) -> BadInputError:
        return BadInputError(self.path, self.line, field, problem)

    def one(self, field: str, *, optional: bool = False) -> str:
        found = self.values.get(field, [])
        if not found and not optional:
            raise self.fail(field, "is empty")
        return found[0] if found else ""

    def all(self, field: str) -> list[str]:
        return self.values.get(field, [])

    def moment(self, field: str, *, optional: bool = False) -> datetime | None:
        value = self.one(field, optional=optional)
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            for fmt in TIME_FORMATS:
                try:
                    parsed = datetime.strptime(value, fmt)
                    break
                except ValueError:
                    continue
            else:
                raise self.fail(field, f"{value!r} is not a Jira time (like 03/Nov/26 9:15 AM)"
                                       " or ISO 8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=self.zone)
        return parsed.astimezone(UTC)

    def number(self, field: str) -> float | None:
        value = self.one(field, optional=True)
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            raise self.fail(field, f"{value!r} is not a number") from None
        if number < 0:
            raise self.fail(field, f"{number:g} is below 0")
        return number


def rows_of(path: Path, zone: ZoneInfo) -> Iterator[JiraRow]:
    reader = csv.reader(text_lines(path))
    header = [h.strip() for h in next(reader, [])]
    for column in ("Issue key", "Issue Type", "Status", "Created"):
        if column not in header:
            raise BadInputError(path, 1, column, "column is missing from the header")
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise BadInputError(path, reader.line_num, "(row)", "has more cells than the header")
        if len(cells) < len(header):  # a truncated export: never guess the missing cells
            raise BadInputError(path, reader.line_num, "(row)", f"has {len(cells)} cells, the"
                                f" header {len(header)}: a truncated row")
        yield JiraRow(path, reader.line_num, header, cells, zone)


class WorkItemsImporter:
    kind = "work-items"

    def __init__(self, timezone: str = "UTC") -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r} (like Europe/Berlin)") from None

    def load(self, path: Path) -> Iterator[SQLModel]:
        unique = Unique("Issue key")
        for row in rows_of(path, self.zone):
            key = row.one("Issue key")
            unique.check_at(row.path, row.line, key)
            yield self._item(row, key)
        unique.finish()

    def _item(self, row: JiraRow, key: str) -> WorkItem:
        raw_type = row.one("Issue Type")
        labels = [label.lower() for label in row.all("Labels")]
        kind = TYPES.get(raw_type.lower())
        if kind is None:
            raise row.fail("Issue Type", f"{raw_type!r} is not a known type ({', '.join(TYPES)})")
        if DEBT_LABELS & set(labels) and kind in ("task", "feature"):
            kind = "debt"  # teams often track debt as a labelled task
        created = row.moment("Created")
        resolved = row.moment("Resolved", optional=True)
        assert created is not None
        if resolved is not None and resolved < created:
            raise row.fail("Resolved", f"{resolved.isoformat()} is before Created")
        status = row.one("Status")
        history: list[list[str | None]] = [["Created", created.isoformat()]]
        if resolved is not None:
            history.append([status, resolved.isoformat()])
        elif status.lower() not in ("open", "to do", "backlog", "new"):
            history.append([status, None])  # the CSV does not say when it moved
        points = next((row.number(c) for c in POINTS_COLUMNS if row.one(c, optional=True)), None)
        spent = row.number("Time Spent")
        return WorkItem(id=key, type=kind, status=status, created=created, resolved=resolved,
                        points=points, release=row.one("Fix Version/s", optional=True) or None,
                        hours_spent=spent / 3600 if spent is not None else None,
                        labels=" ".join(labels), status_history=json.dumps(history))
