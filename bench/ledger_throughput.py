"""Ledger rows per second into SQLite and PostgreSQL through the batching LedgerSink.

Figures go to bench/results/ledger_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg

from collectors.ledger import LedgerSink
from collectors.store import Store
from engine_shim.records import RequestRecord

RESULTS = Path(__file__).parent / "results" / "ledger_throughput.json"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
RECORD = RequestRecord(
    request_id="r", tenant="acme", model="llama", feature="chat",
    endpoint="/v1/chat/completions", arrival_time=1_790_000_000.0,
    finish_time=1_790_000_001.0, outcome="ok", http_status=200,
    first_token_time=1_790_000_000.1, inter_token_gaps=tuple([0.01] * 100),
    prompt_tokens=300, output_tokens=101, trace_id="ab" * 16, pod="vllm-0")


def rows_per_second(store: Store, rows: int, batch: int) -> float:
    sink = LedgerSink(store, batch_size=batch, interval=0.5)
    records = [replace(RECORD, request_id=f"r{i}", tenant=f"t{i % 50}") for i in range(rows)]
    start = time.perf_counter()
    for record in records:
        sink.record(record)
    sink.close()
    elapsed = time.perf_counter() - start
    assert sink.written == rows, (sink.written, rows)
    return rows / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "ledger_throughput", "rows": args.rows,
                              "batch": args.batch,
                              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "machine": {"python": platform.python_version(),
                                          "platform": platform.platform()}}
    sqlite_store = Store.open(str(Path(tempfile.mkdtemp()) / "ledger.sqlite"))
    result["sqlite_rows_per_second"] = rows_per_second(sqlite_store, args.rows, args.batch)
    sqlite_store.close()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        pg = Store.open(POSTGRES, connect_args={"options": f"-csearch_path={schema}"})
        result["postgresql_rows_per_second"] = rows_per_second(pg, args.rows, args.batch)
        pg.close()
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"ledger: SQLite {result['sqlite_rows_per_second']:.0f} rows/s, PostgreSQL"
          f" {result['postgresql_rows_per_second']:.0f} rows/s; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
