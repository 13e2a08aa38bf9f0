"""JSON-lines sink: every finished request as one line, for audits, tests and later import."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from engine_shim.records import EngineSnapshot, RequestRecord


class JsonLinesSink:
    """Appends records to a file; one flush per line so a crash loses at most the line in hand."""

    name = "jsonl"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, record: RequestRecord) -> None:
        line = json.dumps(record.to_dict(), sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        """Snapshots are summarised in Prometheus; the request log keeps requests only."""

    def close(self) -> None:
        with self._lock:
            self._file.close()
