"""The KPI report over 12 months and 10 million ledger rows on SQLite: seconds and peak memory.

The store is the 12-month demo company with the ledger topped up by synthetic requests to
--rows (built once under .cache/bench/, reused while its row count matches). Each step runs
in its own process so its peak RSS is its own: the one-time roll-up of the ledger into hourly
sums (what a store pays once per row, as rows arrive), the monthly and quarterly reports
(target: under 10 s and 2 GiB), and a report after one new request arrives (incremental
roll-up). Figures go to bench/results/kpi_report.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "kpi_report.json"
CACHE = ROOT / ".cache" / "bench"
END_MONTH = date(2026, 10, 1)
TARGET_SECONDS, TARGET_MB = 10.0, 2048.0
COLUMNS = ("source", "request_id", "tenant", "model", "feature", "endpoint", "pod", "gpu",
           "arrival", "finish", "outcome", "http_status", "time_to_first_token",
           "e2e_latency", "mean_inter_token_latency", "queue_time", "prompt_tokens",
           "output_tokens", "cached_prompt_tokens")


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build(path: Path, rows: int) -> float:
    """The demo company, then synthetic requests until the ledger holds `rows`."""
    from collectors.demo_company.load import load
    from collectors.store import Store
    from llmkpi.demo_data import make

    started = time.perf_counter()
    path.unlink(missing_ok=True)
    store = Store.open(str(path))
    # every request raw (a small company, topped up below): this bench times the roll-up
    company = make(path.parent / "company", 12, 7, END_MONTH, base_per_day=500,
                   raw_days=None)
    load(store, company, say=lambda _line: None)
    store.close()
    conn = sqlite3.connect(path)
    have = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
    first = datetime(2025, 11, 1, tzinfo=UTC)
    span = (datetime(2026, 11, 1, tzinfo=UTC) - first).total_seconds()
    rng = random.Random(11)
    extra = max(0, rows - have)
    marks = "%Y-%m-%d %H:%M:%S.%f"

    def requests() -> Any:
        for i in range(extra):
            arrival = first + timedelta(seconds=i * span / extra + rng.random())
            ttft = rng.lognormvariate(-1.6, 0.7)
            e2e = ttft + rng.uniform(0.5, 12.0)
            failed = rng.random() < 0.004
            yield ("bench", f"b{i}", f"tenant-{i % 8:04d}", "meta-llama/Meta-Llama-3-8B-Instruct",
                   ("chat", "summarize", "search")[i % 3], "/v1/chat/completions",
                   f"vllm-{i % 2}", "", arrival.strftime(marks),
                   (arrival + timedelta(seconds=e2e)).strftime(marks),
                   "error" if failed else "ok", 503 if failed else 200,
                   None if failed else ttft, e2e, 0.02, rng.uniform(0, 0.05),
                   rng.randint(50, 2000), rng.randint(20, 600), 0)
            if i and i % 1_000_000 == 0:
                say(f"  ledger: {have + i:,} rows")

    conn.execute("PRAGMA synchronous=OFF")
    conn.executemany(f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES"
                     f" ({', '.join('?' * len(COLUMNS))})", requests())
    conn.commit()
    conn.close()
    return time.perf_counter() - started


def measure(step: str, database: str, at: str) -> dict[str, Any]:
    """Run one step in this process and report its seconds and peak RSS."""
    from collectors import rollup
    from collectors.store import Store
    from kpi_mapping.config import KpiConfig
    from kpi_mapping.periods import parse_period
    from kpi_mapping.report import build as build_report
    from kpi_mapping.report import to_dict

    store = Store.open(database)
    started = time.perf_counter()
    detail: dict[str, Any] = {}
    if step == "rollup":
        detail["rows_rolled_up"] = rollup.refresh(store)
    else:
        kind = "quarter" if step == "quarter" else "month"
        config = KpiConfig()
        doc = to_dict(build_report(store, parse_period(kind, at), config), config)
        detail["mappings_with_a_value"] = sum(
            1 for m in doc["mappings"] if m["cto"]["value"] is not None)
        detail["periods_computed"] = len(doc["history"])
    seconds = time.perf_counter() - started
    store.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(peak, 1), **detail}


def child(step: str, database: Path, at: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.kpi_report", "--measure", step,
                           "--database", str(database), "--at", at],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(done.stdout)
    say(f"  {step}: {result}")
    return result


def add_one_request(database: Path) -> None:
    conn = sqlite3.connect(database)
    conn.execute(f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES"
                 f" ({', '.join('?' * len(COLUMNS))})",
                 ("bench", f"late-{time.time_ns()}", "tenant-0000", "m", "chat", "/v1",
                  "vllm-0", "", "2026-10-31 23:00:00.000000", "2026-10-31 23:00:02.000000",
                  "ok", 200, 0.2, 2.0, 0.02, 0.0, 100, 50, 0))
    conn.commit()
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--measure", choices=("rollup", "month", "quarter"))
    parser.add_argument("--database")
    parser.add_argument("--at", default="2026-10")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the store is kept")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.database, args.at)))
        return 0
    database = args.cache / f"kpi-{args.rows}.sqlite"
    database.parent.mkdir(parents=True, exist_ok=True)
    built = None
    fresh = not database.exists()
    if not fresh:
        with sqlite3.connect(database) as conn:
            fresh = conn.execute("SELECT count(*) FROM ledger").fetchone()[0] < args.rows
    if fresh:
        say(f"building {database} ({args.rows:,} ledger rows; once, then reused)")
        built = round(build(database, args.rows), 1)
        say(f"  built in {built} s")
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        conn.execute("DELETE FROM ledger_hour")
        conn.execute("DELETE FROM rollup_state")  # measure the whole roll-up every run
    rolled = child("rollup", database, args.at)
    month = child("month", database, args.at)
    quarter = child("quarter", database, "2026-Q3")
    add_one_request(database)
    incremental = child("month", database, args.at)
    reports = (month, quarter, incremental)
    result = {
        "benchmark": "kpi_report", "machine": platform.platform(),
        "cpu_count": __import__("os").cpu_count(), "ledger_rows": rows,
        "store_build_seconds": built, "rollup_once": rolled, "month_report": month,
        "quarter_report": quarter, "month_report_after_one_new_request": incremental,
        "targets": {"seconds": TARGET_SECONDS, "peak_rss_mb": TARGET_MB},
        "meets_targets": all(r["seconds"] < TARGET_SECONDS and r["peak_rss_mb"] < TARGET_MB
                             for r in reports),
        "rollup_meets_targets": rolled["seconds"] < TARGET_SECONDS
        and rolled["peak_rss_mb"] < TARGET_MB,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"{args.out}: month report {month['seconds']} s / {month['peak_rss_mb']} MB,"
        f" one-time roll-up {rolled['seconds']} s over {rows:,} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
