"""Incidents in the shape of a PagerDuty export: the web UI's CSV or the REST API's JSON.

PagerDuty has no security category, containment time or deployment link; optional columns
(`category`, `contained_on`, `deployment_id`) carry them, as a team's export script adds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

from collectors.importers.base import (
    BadInputError,
    Cells,
    Unique,
    iso_time,
    json_items,
    line_of,
    read_csv,
)
from collectors.tables import Incident

SEVERITIES = ("high", "low", "p1", "p2", "p3", "p4", "p5", "sev1", "sev2", "sev3", "sev4")


def _check_order(fail: Any, detected: datetime, **later: datetime | None) -> None:
    for name, moment in later.items():
        if moment is not None and moment < detected:
            raise fail(name, f"{moment.isoformat()} is before the incident was created")


class IncidentsImporter:
    kind = "incidents"
    csv_columns = ("id", "service_name", "urgency", "created_on")

    def load(self, path: Path) -> Iterator[SQLModel]:
        if path.suffix.lower() == ".json":
            yield from self._json(path)
            return
        unique = Unique("id")
        for cells in read_csv(path, self.csv_columns):
            incident_id = cells.text("id")
            unique.check(cells, incident_id)
            yield self._from_cells(cells, incident_id)
        unique.finish()

    def _from_cells(self, cells: Cells, incident_id: str) -> Incident:
        created = cells.moment("created_on")
        assert created is not None
        ack = cells.number("seconds_to_first_ack", optional=True)
        resolve = cells.number("seconds_to_resolve", optional=True)
        resolved = cells.moment("resolved_on", optional=True) or (
            created + timedelta(seconds=resolve) if resolve is not None else None)
        acknowledged = created + timedelta(seconds=ack) if ack is not None else None
        contained = cells.moment("contained_on", optional=True)
        _check_order(cells.fail, created, resolved_on=resolved, contained_on=contained)
        severity = (cells.text("priority", optional=True) or cells.text("urgency")).lower()
        if severity not in SEVERITIES:
            raise cells.fail("urgency", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
        return Incident(
            id=incident_id, title=cells.text("description", optional=True),
            service=cells.text("service_name"), severity=severity,
            category=(cells.text("category", optional=True) or "availability").lower(),
            detected=created, acknowledged=acknowledged, contained=contained,
            resolved=resolved, deployment_id=cells.text("deployment_id", optional=True) or None)

    def _json(self, path: Path) -> list[SQLModel]:
        text, incidents = json_items(path, "incidents")
        rows: list[SQLModel] = []
        seen: set[str] = set()
        for index, item in enumerate(incidents):
            line = line_of(text, item)
            rows.append(self._from_json(path, line, index, item, seen))
        return rows

    def _from_json(self, path: Path, line: int, index: int, item: Any,
                   seen: set[str]) -> Incident:
        def fail(field: str, problem: str) -> BadInputError:
            return BadInputError(path, line, f"incidents[{index}].{field}", problem)

        if not isinstance(item, dict):
            raise fail("(item)", "is not an object")
        incident_id = str(item.get("id") or "")
        if not incident_id:
            raise fail("id", "is missing")
        if incident_id in seen:
            raise fail("id", f"{incident_id} appears twice")
        seen.add(incident_id)

        def moment(field: str, value: Any) -> datetime | None:
            return None if value in (None, "") else iso_time(fail, field, str(value))

        created = moment("created_at", item.get("created_at"))
        if created is None:
            raise fail("created_at", "is missing")
        acks = item.get("acknowledgements") or []
        acknowledged = moment("acknowledgements[0].at", acks[0].get("at")) if acks else None
        resolved = moment("resolved_at", item.get("resolved_at"))
        if resolved is None and item.get("status") == "resolved":
            resolved = moment("last_status_change_at", item.get("last_status_change_at"))
        contained = moment("contained_at", item.get("contained_at"))
        _check_order(fail, created, resolved_at=resolved, contained_at=contained)
        service = (item.get("service") or {}).get("summary")
        if not service:
            raise fail("service.summary", "is missing")
        priority = (item.get("priority") or {}).get("summary")
        severity = str(priority or item.get("urgency") or "").lower()
        if severity not in SEVERITIES:
            raise fail("urgency", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
        return Incident(id=incident_id, title=str(item.get("title") or ""), service=service,
                        severity=severity, category=str(item.get("category") or
                                                        "availability").lower(),
                        detected=created, acknowledged=acknowledged, contained=contained,
                        resolved=resolved, deployment_id=item.get("deployment_id"))
