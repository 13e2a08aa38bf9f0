"""Soak: bursty load for a long while, a fault every minute, nothing lost, nothing growing.

The sidecar (nginx data plane, journal, SQLite ledger, outbox) in front of the simulator.
A client streams in bursts (32 streams for 20 s, then 4 for 40 s), each request with its
own X-Request-Id. Every minute one fault, in turn: the telemetry process SIGKILLed and
started again (nginx keeps serving and is adopted); the ledger table renamed away for 15 s
(the store refuses every batch); the engine SIGKILLed and started again 5 s later (requests
fail while it is gone). Every 10 s: the telemetry process's and nginx's RSS and open files,
the journal lag, the ledger's row count.

At the end the load stops and the ledger catches up. Verdict: every request the client saw
complete is in the ledger exactly once (by its X-Request-Id), the outbox holds one request
event per ledger row (both read the journal); RSS
and open files of the last third of the run within 10 % (+8 MiB) and +8 of the first
third's. Figures go to bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from llmkpi import processes

RESULTS = Path(__file__).parent / "results" / "soak.json"
FAULTS = ("kill-telemetry", "store-away", "kill-engine")


class BurstyLoad:
    """Streams in bursts from a thread; keeps the ids of requests that completed."""

    def __init__(self, url: str, model: str) -> None:
        self.url, self.model = url, model
        self.completed: list[str] = []
        self.failed = 0
        self.streams = 4
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _one(self, session: aiohttp.ClientSession, rid: str) -> None:
        body = {"model": self.model, "stream": True, "max_tokens": 16,
                "messages": [{"role": "user", "content": "soak " * 40}]}
        try:
            async with session.post(self.url + "/v1/chat/completions", json=body,
                                    headers={"X-Request-Id": rid}) as resp:
                raw = await resp.read()
            if resp.status == 200 and raw.endswith(b"data: [DONE]\n\n"):
                self.completed.append(rid)
                return
        except (aiohttp.ClientError, OSError):
            pass
        self.failed += 1
        await asyncio.sleep(0.2)  # the engine is away: do not spin

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            async def worker(w: int) -> None:
                n = 0
                while not self._stop.is_set():
                    if w >= self.streams:
                        await asyncio.sleep(0.2)
                        continue
                    await self._one(session, f"s{w:02d}-{n:07d}")
                    n += 1
            await asyncio.gather(*(worker(w) for w in range(32)))


def scrape(url: str, name: str) -> float:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return float("nan")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def tree(pid: int) -> tuple[float, int]:
    """RSS (MiB) and open files of a process and its children."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return float("nan"), 0
    rss, files = 0.0, 0
    for proc in procs:
        try:
            rss += proc.memory_info().rss / 2**20
            files += proc.num_fds()
        except psutil.Error:
            continue
    return rss, files


def main() -> int:  # noqa: PLR0915 - one scenario, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmkpi-soak-"))
    sim_port, port, metrics = (processes.free_port() for _ in range(3))
    upstream = f"http://127.0.0.1:{sim_port}"
    database, outbox, journal = tmp / "ledger.sqlite", tmp / "outbox.sqlite", tmp / "journal"
    env = {"LLMKPI_DATABASE_URL": str(database), "LLMKPI_LEDGER": "true",
           "LLMKPI_LOG_LEVEL": "WARNING", "LLMKPI_JOURNAL_MAX_BYTES": str(4 * 2**20)}
    argv = ["sidecar", "--upstream", upstream, "--port", str(port), "--metrics-port",
            str(metrics), "--data-plane", "nginx", "--journal", str(journal), "--outbox",
            str(outbox), "--engine-poll-seconds", "1"]
    sim_argv = ["simulate", "--port", str(sim_port), "--profile", "h100-llama3-8b"]
    metrics_url = f"http://127.0.0.1:{metrics}/metrics"

    def start_sim() -> processes.Started:
        started = processes.start("simulator", sim_argv, tmp / "logs")
        processes.wait_http(upstream + "/health", started)
        return started

    def start_telemetry() -> processes.Started:
        started = processes.start("sidecar", argv, tmp / "logs", env=env)
        processes.wait_http(metrics_url, started, timeout=60)
        return started

    sim, telemetry = start_sim(), start_telemetry()
    with urllib.request.urlopen(upstream + "/v1/models") as resp:
        model = json.loads(resp.read())["data"][0]["id"]
    load = BurstyLoad(f"http://127.0.0.1:{port}", model)
    load.start()
    samples: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    began = time.monotonic()
    next_fault, next_sample, fault_n = began + 60, began, 0
    try:
        while (now := time.monotonic()) - began < args.minutes * 60:
            phase = (now - began) % 60
            load.streams = 32 if phase < 20 else 4
            if now >= next_sample:
                nginx_pid = int((journal / "nginx" / "nginx.pid").read_text())
                t_rss, t_files = tree(telemetry.process.pid)
                t_rss_alone = psutil.Process(telemetry.process.pid).memory_info().rss / 2**20
                n_rss, n_files = tree(nginx_pid)
                samples.append({
                    "minute": round((now - began) / 60, 2), "telemetry_rss_mb": t_rss_alone,
                    "telemetry_tree_rss_mb": t_rss, "telemetry_open_files": t_files,
                    "nginx_rss_mb": n_rss, "nginx_open_files": n_files,
                    "journal_lag_bytes": scrape(metrics_url, "llmkpi_journal_lag_bytes"),
                    "completed": len(load.completed), "failed": load.failed})
                print(json.dumps(samples[-1]), flush=True)
                next_sample += 10
            if now >= next_fault:
                kind = FAULTS[fault_n % len(FAULTS)]
                fault_n += 1
                faults.append({"minute": round((now - began) / 60, 2), "fault": kind})
                print(f"fault: {kind}", flush=True)
                if kind == "kill-telemetry":
                    telemetry.process.kill()
                    telemetry.process.wait(10)
                    telemetry = start_telemetry()
                elif kind == "store-away":
                    with sqlite3.connect(database, timeout=30) as db:
                        db.execute("ALTER TABLE ledger RENAME TO ledger_away")
                    time.sleep(15)
                    with sqlite3.connect(database, timeout=30) as db:
                        db.execute("ALTER TABLE ledger_away RENAME TO ledger")
                else:
                    sim.process.kill()
                    sim.process.wait(10)
                    time.sleep(5)
                    sim = start_sim()
                next_fault += 60
            time.sleep(0.2)
    finally:
        load.stop()
    deadline = time.monotonic() + 120
    while scrape(metrics_url, "llmkpi_journal_lag_bytes") > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    with sqlite3.connect(database) as db:
        ledger = Counter(r[0] for r in db.execute("SELECT client_request_id FROM ledger"))
    with sqlite3.connect(outbox) as db:
        events = int(db.execute("SELECT count(*) FROM outbox WHERE event ="
                                " 'llm_request_completed'").fetchone()[0])
    processes.stop(telemetry)
    processes.stop(sim)
    completed = load.completed
    missing = [rid for rid in completed if ledger[rid] == 0]
    twice = [rid for rid, n in ledger.items() if n > 1]
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return sum(float(r[key]) for r in rows) / len(rows)

    growth = {key: {"first_third": mean(first, key), "last_third": mean(last, key)}
              for key in ("telemetry_rss_mb", "nginx_rss_mb", "telemetry_open_files",
                          "nginx_open_files")}
    flat = all(g["last_third"] <= g["first_third"] * 1.10 + 8 for k, g in growth.items()
               if k.endswith("rss_mb")) and all(
        g["last_third"] <= g["first_third"] + 8 for k, g in growth.items()
        if k.endswith("open_files"))
    result = {
        "benchmark": "soak", "minutes": args.minutes,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "setup": "sidecar on the nginx plane with journal, SQLite ledger and outbox, in front"
                 " of the simulator (h100-llama3-8b); bursts of 32 streams for 20 s a minute,"
                 " 4 otherwise; a fault a minute in turn: " + ", ".join(FAULTS),
        "completed": len(completed), "failed_while_faulted": load.failed,
        "ledger_rows": sum(ledger.values()), "outbox_request_events": events,
        "missing_from_ledger": len(missing), "in_ledger_twice": len(twice),
        "faults": faults, "growth": growth, "samples": samples,
        "meets_targets": not missing and not twice and events == sum(ledger.values()) and flat,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("samples", "faults")},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
