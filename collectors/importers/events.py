"""Product events: Mixpanel's raw export (JSON lines) and llmkpi's own local outbox."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

from collectors.importers.base import BadInputError, text_lines
from collectors.tables import ProductEventRow

SURVEYS = ("relationship", "in_product")


def check_known(path: Path, line: int, name: str, props: dict[str, Any]) -> None:
    """The properties the KPI layer reads, checked where it reads them: an NPS answer is a
    whole score 0-10 of a known survey; an integration attempt's success is true or false."""
    if name == "nps_submitted":
        score = props.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) \
                or score != int(score) or not 0 <= score <= 10:
            raise BadInputError(path, line, "properties.score", f"{score!r} is not an NPS"
                                " score (a whole number 0 to 10)")
        survey = props.get("survey")
        if survey is not None and survey not in SURVEYS:
            raise BadInputError(path, line, "properties.survey", f"{survey!r} is not one of"
                                f" {', '.join(SURVEYS)}")
    if name == "integration_attempted" and "success" in props \
            and not isinstance(props["success"], bool):
        raise BadInputError(path, line, "properties.success",
                            f"{props['success']!r} is not true or false")


def event_row(path: Path, line: int, doc: Any, source: str) -> ProductEventRow:
    if not isinstance(doc, dict):
        raise BadInputError(path, line, "(line)", "is not a JSON object")
    name = doc.get("event")
    props = doc.get("properties")
    if not isinstance(name, str) or not name:
        raise BadInputError(path, line, "event", "must be a non-empty string")
    if not isinstance(props, dict):
        raise BadInputError(path, line, "properties", "must be an object")
    distinct = props.get("distinct_id")
    if distinct is None or distinct == "":
        raise BadInputError(path, line, "properties.distinct_id", "is missing")
    stamp = props.get("time")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float) or stamp <= 0:
        raise BadInputError(path, line, "properties.time", f"{stamp!r} is not a Unix time")
    seconds = stamp / 1000 if stamp > 10**11 else stamp  # the export uses s, /import ms
    check_known(path, line, name, props)
    insert_id = props.get("$insert_id")
    rest = {k: v for k, v in props.items()
            if k not in ("distinct_id", "time", "$insert_id", "token")}
    if not insert_id:  # older events: identity from the event itself, as Mixpanel dedups
        material = json.dumps([name, distinct, stamp, rest], sort_keys=True, default=str)
        insert_id = hashlib.sha256(material.encode()).hexdigest()[:32]
    try:
        happened = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):  # 1e309, NaN, beyond year 9999
        raise BadInputError(path, line, "properties.time",
                            f"{stamp!r} is not a Unix time") from None
    return ProductEventRow(insert_id=str(insert_id)[:64], event=name, distinct_id=str(distinct),
                           happened=happened,
                           properties=json.dumps(rest, sort_keys=True), source=source)


class MixpanelExportImporter:
    """Mixpanel's raw event export: one JSON object per line. Key: `$insert_id`."""

    kind = "mixpanel"

    def load(self, path: Path) -> Iterator[SQLModel]:
        """The export may repeat an event (Mixpanel dedups by `$insert_id` too): the store
        keeps the last line with that id."""
        for line, text in enumerate(text_lines(path), 1):
            if not text.strip():
                continue
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise BadInputError(path, line, "(line)", f"not JSON: {exc.msg}") from None
            yield event_row(path, line, doc, "mixpanel")


class OutboxImporter:
    """llmkpi's local event log (the SQLite outbox the sidecar writes). Key: `$insert_id`."""

    kind = "outbox"

    def load(self, path: Path) -> Iterator[SQLModel]:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            try:
                bodies = db.execute("SELECT seq, body FROM outbox ORDER BY seq")
            except sqlite3.DatabaseError as exc:
                raise BadInputError(path, 1, "(file)", f"not an llmkpi outbox: {exc}") from None
            for seq, body in bodies:  # the cursor streams: an outbox of any size
                try:
                    doc = json.loads(body)
                except ValueError:
                    raise BadInputError(path, seq, "body", "is not JSON") from None
                yield event_row(path, seq, doc, "outbox")
        finally:
            db.close()
