"""Request records from a file: backfill months of traffic, or another gateway's logs.

CSV with a header, or JSON lines (one object per line), in the columns the sidecar's ledger
writes (docs/imports.md, "ledger"). The file streams in one transaction: a bad line anywhere
leaves the store as it was; rows are keyed by (source, request_id), so importing a file
twice adds nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import SQLModel

from collectors import rollup
from collectors.importers.base import (
    BadInputError,
    Cells,
    Unique,
    iso_time,
    read_csv,
    text_lines,
)
from collectors.store import Store
from collectors.tables import LedgerRow
from engine_shim.records import OUTCOMES

REQUIRED = ("request_id", "tenant", "model", "arrival", "finish", "outcome", "http_status")
OPTIONAL_TEXT = {"feature": ("default", 64), "endpoint": ("/v1/chat/completions", 64),
                 "pod": ("", 128), "gpu": ("", 64), "finish_reason": (None, 32),
                 "trace_id": (None, 32), "source": ("import", 16)}
SECONDS = ("time_to_first_token", "mean_inter_token_latency", "queue_time", "prefill_time",
           "decode_time")
TOKENS = ("prompt_tokens", "output_tokens", "cached_prompt_tokens")
LIMITS = {"request_id": 128, "tenant": 64, "model": 256}
ROLES = ("", "prefill", "decode")  # RequestRecord.role
COLUMNS = (*REQUIRED, *OPTIONAL_TEXT, *SECONDS, *TOKENS, "role")

Fail = Callable[[str, str], BadInputError]


class LedgerImporter:
    kind = "ledger"
    columns = REQUIRED

    def load(self, path: Path) -> Iterator[SQLModel]:
        unique = Unique("request_id")
        for line, get, fail in self._records(path):
            row = _row(get, fail)
            shown = row.request_id if row.source == "import" else \
                f"{row.request_id} (source {row.source})"
            unique.check_at(path, line, shown)
            yield row
        unique.finish()

    def after_import(self, store: Store) -> None:
        """Roll the new rows up at once: cost and serving health read the roll-up."""
        rollup.refresh(store)

    def _records(self, path: Path) -> Iterator[tuple[int, Callable[[str], str], Fail]]:
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            yield from _json_lines(path)
            return
        for cells in read_csv(path, REQUIRED):  # it refuses truncated rows
            yield cells.line, _cell_getter(cells), cells.fail


def _cell_getter(cells: Cells) -> Callable[[str], str]:
    return lambda name: (cells.row.get(name) or "").strip()


def _json_lines(path: Path) -> Iterator[tuple[int, Callable[[str], str], Fail]]:
    for number, text in enumerate(text_lines(path), 1):
        if not text.strip():
            continue

        def fail(field: str, problem: str, line: int = number) -> BadInputError:
            return BadInputError(path, line, field, problem)

        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            raise fail("(json)", f"not valid JSON: {exc.msg}") from None
        if not isinstance(item, dict):
            raise fail("(line)", "expected one JSON object per line")
        unknown = sorted(set(item) - set(COLUMNS))
        if unknown:
            raise fail(unknown[0], f"unknown field: expected {', '.join(COLUMNS)}")

        def get(name: str, record: dict[str, Any] = item) -> str:
            value = record.get(name)
            return "" if value is None else str(value).strip()

        yield number, get, fail


def _row(get: Callable[[str], str], fail: Fail) -> LedgerRow:
    values: dict[str, Any] = {}
    for name in REQUIRED:
        if not get(name):
            raise fail(name, "is empty")
    for name, limit in LIMITS.items():
        if len(get(name)) > limit:
            raise fail(name, f"is {len(get(name))} characters; at most {limit}")
        values[name] = get(name)
    for name, (default, limit) in OPTIONAL_TEXT.items():
        text = get(name)
        if len(text) > limit:
            raise fail(name, f"is {len(text)} characters; at most {limit}")
        values[name] = text or default
    arrival, finish = _moment(get, fail, "arrival"), _moment(get, fail, "finish")
    if finish < arrival:
        raise fail("finish", f"{finish.isoformat()} is before arrival")
    values["role"] = _role(get, fail)
    outcome = get("outcome").lower()
    if outcome not in OUTCOMES:
        raise fail("outcome", f"{outcome!r} is not one of {', '.join(OUTCOMES)}")
    status = _number(get, fail, "http_status", whole=True)
    if status is None or not 100 <= status <= 599:
        raise fail("http_status", f"{get('http_status')!r} is not an HTTP status code")
    for name in SECONDS:
        values[name] = _number(get, fail, name)
    for name in TOKENS:
        values[name] = _number(get, fail, name, whole=True)
    e2e = (finish - arrival).total_seconds()
    ttft = values["time_to_first_token"]
    if ttft is not None and ttft > e2e + 1e-6:
        raise fail("time_to_first_token", f"{ttft:g} s is longer than the request ({e2e:g} s)")
    return LedgerRow(arrival=arrival, finish=finish, outcome=outcome, http_status=int(status),
                     e2e_latency=e2e, **values)


def _role(get: Callable[[str], str], fail: Fail) -> str:
    role = get("role").lower()
    if role not in ROLES:
        raise fail("role", f"{role!r} is not one of prefill, decode (or empty)")
    return role


def _moment(get: Callable[[str], str], fail: Fail, name: str) -> datetime:
    return iso_time(fail, name, get(name))


def _number(get: Callable[[str], str], fail: Fail, name: str,
            whole: bool = False) -> Any:
    text = get(name)
    if not text:
        return None
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise fail(name, f"{text!r} is not {kind}") from None
    if not math.isfinite(value) or value < 0:
        raise fail(name, f"{text!r} must be a finite number, not below 0")
    return value
