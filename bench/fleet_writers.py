"""Eight sidecars writing one PostgreSQL ledger at once, with the hourly roll-up refreshing
beside them: does the store take a 50-million-requests-a-day fleet's peak (~2,000 rows/s)
with nothing lost, and does the roll-up keep up?

Each writer is its own process (as each sidecar is), feeding a LedgerSink at its share of
the rate; a ninth process refreshes the roll-up in a loop, as `kpi serve` does. At the end:
rows offered = rows in the ledger = requests in the roll-up, the roll-up's lag (rows still
pending) sampled through the run, and the time the last refresh took to catch up.

Figures go to bench/results/fleet_writers.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import func, select

RESULTS = Path(__file__).parent / "results" / "fleet_writers.json"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def writer(schema: str, index: int, rate: float, seconds: float, out: Any) -> None:
    from bench.ledger_throughput import RECORD
    from collectors.ledger import LedgerSink
    from collectors.store import Store

    store = Store.open(POSTGRES, connect_args={"options": f"-csearch_path={schema}"},
                       migrate=False)
    sink = LedgerSink(store, batch_size=500, interval=0.5, pod=f"vllm-{index}")
    start = time.monotonic()
    offered = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) + 1
        now = time.time()
        while offered < due:
            sink.record(replace(RECORD, request_id=f"w{index}-{offered}",
                                tenant=f"t{offered % 50}", pod=f"vllm-{index}",
                                arrival_time=now - 1.0, first_token_time=now - 0.9,
                                finish_time=now))
            offered += 1
        time.sleep(0.01)
    achieved = offered / (time.monotonic() - start)
    sink.close()
    out.put({"writer": index, "offered": offered, "written": sink.written,
             "dropped": sink.dropped, "failures": sink.failures,
             "quarantined": sink.quarantined, "rows_per_second": achieved})
    store.close()


def refresher(schema: str, stop: Any, out: Any) -> None:
    from collectors import rollup
    from collectors.store import Store

    store = Store.open(POSTGRES, connect_args={"options": f"-csearch_path={schema}"},
                       migrate=False)
    lags, refreshes, slowest = [], 0, 0.0
    while not stop.is_set():
        lags.append(rollup.pending(store))
        began = time.perf_counter()
        rollup.refresh(store)
        slowest = max(slowest, time.perf_counter() - began)
        refreshes += 1
        time.sleep(0.5)
    out.put({"refreshes": refreshes, "pending_max": max(lags, default=0),
             "pending_mean": sum(lags) / len(lags) if lags else 0.0,
             "refresh_slowest_seconds": slowest})
    store.close()


def run(writers: int, rate: float, seconds: float) -> dict[str, Any]:
    from collectors import rollup
    from collectors.store import Store
    from collectors.tables import LedgerHour, LedgerRow

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    ctx = mp.get_context("spawn")
    try:
        store = Store.open(POSTGRES, connect_args={"options": f"-csearch_path={schema}"})
        out, stop = ctx.Queue(), ctx.Event()
        rolling = ctx.Process(target=refresher, args=(schema, stop, out))
        rolling.start()
        procs = [ctx.Process(target=writer, args=(schema, i, rate / writers, seconds, out))
                 for i in range(writers)]
        began = time.monotonic()
        for proc in procs:
            proc.start()
        results = [out.get(timeout=seconds + 300) for _ in procs]
        wall = time.monotonic() - began
        for proc in procs:
            proc.join()
        stop.set()
        rolled = out.get(timeout=300)
        rolling.join()
        began = time.perf_counter()
        rollup.refresh(store)
        catch_up = time.perf_counter() - began
        with store.engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(LedgerRow)).scalar()
            summed = conn.execute(select(func.sum(LedgerHour.requests))).scalar()
        store.close()
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    offered = sum(r["offered"] for r in results)
    return {"writers": writers, "target_rows_per_second": rate, "seconds": seconds,
            "rows_offered": offered, "rows_in_ledger": int(stored or 0),
            "requests_in_rollup": int(summed or 0),
            # each writer's own pace, from its first row to its last (process start excluded)
            "rows_per_second": sum(r["rows_per_second"] for r in results),
            "wall_seconds": wall,
            "lost": offered - int(stored or 0),
            "dropped": sum(r["dropped"] for r in results),
            "write_failures": sum(r["failures"] for r in results),
            "per_writer": sorted(results, key=lambda r: int(r["writer"])),
            "rollup": {**rolled, "final_refresh_seconds": catch_up}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--rate", type=float, default=2000.0, help="rows/s, all writers")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.writers, args.rate, args.seconds)
    result.update({"benchmark": "fleet_writers",
                   "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "machine": {"python": platform.python_version(),
                               "platform": platform.platform(), "cores": mp.cpu_count()}})
    result["meets_targets"] = (result["lost"] == 0 and result["dropped"] == 0
                               and result["requests_in_rollup"] == result["rows_offered"]
                               and result["rows_per_second"] >= 0.95 * args.rate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"{args.writers} writers: {result['rows_per_second']:.0f} rows/s offered"
          f" (target {args.rate:.0f}), {result['rows_in_ledger']} in the ledger,"
          f" {result['requests_in_rollup']} in the roll-up, lost {result['lost']};"
          f" roll-up pending at most {result['rollup']['pending_max']} rows, slowest refresh"
          f" {result['rollup']['refresh_slowest_seconds']:.2f} s; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
