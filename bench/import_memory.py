"""Peak memory of `llmkpi import` against the size of the file: it must stay flat.

For each size, writes a ledger file (JSON lines, and CSV) and a Mixpanel export of about that
many bytes (the ledger at 10 requests a second on each of two pods), imports it into a
fresh SQLite store in a child process, and reads the child's
peak resident set size from the kernel (wait4). The figures to compare are the peaks side by
side in one run: a 1 GiB file should peak within a few MiB of a 10 MiB one (target: under
300 MB). Figures go to bench/results/import_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

RESULTS = Path(__file__).parent / "results" / "import_memory.json"
MIB = 1024 * 1024


START = datetime(2026, 10, 1, tzinfo=UTC)
RATE = 10.0  # requests per second on each of the two pods: 72,000 ledger rows an hour


def _times(index: int) -> tuple[str, str, str]:
    arrival = START + timedelta(seconds=index // 2 / RATE)
    finish = arrival + timedelta(seconds=2.5)
    return f"vllm-{index % 2}", arrival.isoformat(), finish.isoformat()


def ledger_line(index: int) -> str:
    pod, arrival, finish = _times(index)
    return json.dumps({"request_id": f"req-{index:012d}", "tenant": f"tenant-{index % 97}",
                       "model": "llama-3.1-8b-instruct", "feature": "chat", "pod": pod,
                       "arrival": arrival, "finish": finish,
                       "outcome": "ok", "http_status": 200, "time_to_first_token": 0.21,
                       "prompt_tokens": 300 + index % 50, "output_tokens": 120}) + "\n"


def ledger_csv_line(index: int) -> str:
    if index < 0:
        return ("request_id,tenant,model,feature,pod,arrival,finish,outcome,http_status,"
                "time_to_first_token,prompt_tokens,output_tokens\n")
    pod, arrival, finish = _times(index)
    return (f"req-{index:012d},tenant-{index % 97},llama-3.1-8b-instruct,chat,{pod},"
            f"{arrival},{finish},ok,200,0.21,{300 + index % 50},120\n")


def mixpanel_line(index: int) -> str:
    return json.dumps({"event": "feature_engaged", "properties": {
        "time": 1_791_990_000 + index, "distinct_id": f"tenant-{index % 97}",
        "$insert_id": f"ev-{index:016d}", "feature": "search", "mp_lib": "web"}}) + "\n"


def write_file(path: Path, size: int, line: Callable[[int], str], header: bool) -> int:
    rows = 0
    with path.open("w") as out:
        written = out.write(line(-1)) if header else 0
        while written < size:
            written += out.write(line(rows))
            rows += 1
    return rows


def import_peak(kind: str, path: Path, database: Path) -> tuple[float, float, str]:
    """Peak RSS in MiB and seconds of one `llmkpi import` in a child process."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "llmkpi", "import", kind, str(path),
                              "--database", str(database)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    out = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"import {kind} {path} failed ({child.returncode}): {out}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start, out.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mib", default="10,100,1024",
                        help="file sizes in MiB, comma-separated")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tmp", help="folder for the generated files (a 1 GiB file and"
                        " its store need about 2.5 GiB; default the system's temp folder)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes_mib.split(",")]
    formats: dict[str, tuple[str, str, Callable[[int], str], bool]] = {
        "ledger-jsonl": ("ledger", "jsonl", ledger_line, False),
        "ledger-csv": ("ledger", "csv", ledger_csv_line, True),
        "mixpanel-jsonl": ("mixpanel", "jsonl", mixpanel_line, False),
    }
    runs: list[dict[str, Any]] = []
    say: TextIO = sys.stderr
    with tempfile.TemporaryDirectory(dir=args.tmp) as folder:
        for size in sizes:
            for name, (kind, suffix, line, header) in formats.items():
                path = Path(folder) / f"{name}-{size}.{suffix}"
                rows = write_file(path, size * MIB, line, header)
                database = Path(folder) / f"{name}-{size}.sqlite"
                peak, seconds, _out = import_peak(kind, path, database)
                runs.append({"format": name, "file_mib": round(path.stat().st_size / MIB, 1),
                             "rows": rows, "peak_rss_mib": round(peak, 1),
                             "seconds": round(seconds, 1),
                             "rows_per_second": round(rows / seconds)})
                print(f"{name:15} {size:5} MiB {rows:9} rows: peak {peak:6.1f} MiB,"
                      f" {seconds:6.1f} s", file=say, flush=True)
                path.unlink()
                database.unlink()
    by_format: dict[str, dict[str, float]] = {}
    for run in runs:
        by_format.setdefault(run["format"], {})[str(run["file_mib"])] = run["peak_rss_mib"]
    growth = {name: round(max(peaks.values()) / min(peaks.values()), 3)
              for name, peaks in by_format.items()}
    result = {"benchmark": "import_memory",
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": {"python": platform.python_version(),
                          "platform": platform.platform()},
              "target": "peak RSS under 300 MB for a 1 GiB file, flat in the file size",
              "runs": runs, "peak_growth_largest_over_smallest": growth}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(growth), file=say)
    worst = max(run["peak_rss_mib"] for run in runs)
    return 0 if worst * MIB < 300e6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
