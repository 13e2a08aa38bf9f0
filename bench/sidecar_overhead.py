"""What the sidecar adds: TTFT and per-chunk delay over calling the engine directly.

The simulator runs in zero-delay mode, so the proxy's own cost dominates. Three modes
alternate at each concurrency (1, 16, 128 streams) so drift in the machine hits all alike:
direct to the engine, through a bare aiohttp pass-through proxy (the cost of any Python
HTTP hop), and through the sidecar. Sidecar minus pass-through is what measuring costs.
Figures go to bench/results/sidecar_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from llmkpi import processes
from llmkpi.serve import install_fast_loop

RESULTS = Path(__file__).parent / "results" / "sidecar_overhead.json"
BODY = {"messages": [{"role": "user", "content": "measure the proxy " * 20}], "stream": True,
        "max_tokens": 32, "ignore_eos": True}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_stream(session: aiohttp.ClientSession, url: str) -> tuple[float, list[float]]:
    start = time.perf_counter()
    first: float | None = None
    last = start
    gaps: list[float] = []
    async with session.post(url + "/v1/chat/completions", json=BODY) as resp:
        async for line in resp.content:
            if b'"content":"' in line and b'"content":""' not in line:
                now = time.perf_counter()
                if first is None:
                    first = now
                else:
                    gaps.append(now - last)
                last = now
    assert first is not None, "no token arrived"
    return first - start, gaps


async def block(url: str, streams: int, per_stream: int) -> tuple[list[float], list[float]]:
    ttfts: list[float] = []
    gaps: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for _ in range(per_stream):
                ttft, g = await one_stream(session, url)
                ttfts.append(ttft)
                gaps.extend(g)

        await asyncio.gather(*(worker() for _ in range(streams)))
    return ttfts, gaps


def measure(urls: dict[str, str], sidecar_pid: int, rounds: int, quick: bool
            ) -> dict[str, Any]:
    proc = psutil.Process(sidecar_pid)
    out: dict[str, Any] = {}
    for streams in (1, 16, 128):
        per_stream = max(2, (40 if quick else 200) // streams)
        data: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in urls}
        cpu = 0.0
        tokens = 0
        for url in urls.values():
            asyncio.run(block(url, streams, 1))  # warm connections and caches
        for _ in range(rounds):
            for mode, url in urls.items():
                before = sum(proc.cpu_times()[:2])
                ttfts, gaps = asyncio.run(block(url, streams, per_stream))
                if mode == "sidecar":
                    cpu += sum(proc.cpu_times()[:2]) - before
                    tokens += len(ttfts) + len(gaps)
                data[mode][0].extend(ttfts)
                data[mode][1].extend(gaps)
        ttft = {m: (pct(d[0], 0.5) * 1e3, pct(d[0], 0.99) * 1e3) for m, d in data.items()}
        gap = {m: statistics.fmean(d[1]) * 1e6 for m, d in data.items()}
        out[str(streams)] = {
            "requests_per_mode": len(data["sidecar"][0]),
            "ttft_ms": {m: {"p50": v[0], "p99": v[1]} for m, v in ttft.items()},
            "added_ttft_ms": {"p50": ttft["sidecar"][0] - ttft["direct"][0],
                              "p99": ttft["sidecar"][1] - ttft["direct"][1]},
            "measurement_ttft_ms": {"p50": ttft["sidecar"][0] - ttft["passthrough"][0],
                                    "p99": ttft["sidecar"][1] - ttft["passthrough"][1]},
            "passthrough_ttft_ms": {"p50": ttft["passthrough"][0] - ttft["direct"][0],
                                    "p99": ttft["passthrough"][1] - ttft["direct"][1]},
            "added_per_chunk_us": gap["sidecar"] - gap["direct"],
            "sidecar_cpu_seconds_per_1k_tokens": cpu / tokens * 1000 if tokens else None,
        }
        row = out[str(streams)]
        print(f"{streams:>4} streams: sidecar adds TTFT p50 {row['added_ttft_ms']['p50']:+.2f}"
              f" / p99 {row['added_ttft_ms']['p99']:+.2f} ms (a bare aiohttp hop:"
              f" {row['passthrough_ttft_ms']['p50']:+.2f}"
              f" / {row['passthrough_ttft_ms']['p99']:+.2f});"
              f" per chunk {row['added_per_chunk_us']:+.0f} us;"
              f" CPU {row['sidecar_cpu_seconds_per_1k_tokens']:.3f} s/1k tokens")
    out["sidecar_rss_mb"] = proc.memory_info().rss / 2**20
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    install_fast_loop()
    tmp = Path(tempfile.mkdtemp(prefix="llmkpi-bench-"))
    sim_port, port, metrics_port, plain_port = (processes.free_port() for _ in range(4))
    sim = processes.start("simulator", ["simulate", "--port", str(sim_port), "--profile",
                                        "zero-delay"], tmp)
    car = processes.start("sidecar", ["sidecar", "--upstream", f"http://127.0.0.1:{sim_port}",
                                      "--port", str(port), "--metrics-port", str(metrics_port)],
                          tmp, env={"LLMKPI_LOG_LEVEL": "WARNING"})
    plain = processes.start("passthrough", [sys.executable, "-m", "bench.passthrough_proxy",
                                            f"http://127.0.0.1:{sim_port}", str(plain_port)],
                            tmp)
    urls = {"direct": f"http://127.0.0.1:{sim_port}",
            "passthrough": f"http://127.0.0.1:{plain_port}",
            "sidecar": f"http://127.0.0.1:{port}"}
    with processes.running(sim, car, plain):
        for name, started in (("direct", sim), ("passthrough", plain), ("sidecar", car)):
            processes.wait_http(urls[name] + "/health", started)
        figures = measure(urls, car.process.pid, args.rounds, args.quick)
    at128 = figures["128"]["added_ttft_ms"]
    result = {
        "benchmark": "sidecar_overhead",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "setup": "simulator zero-delay, chat stream of 32 tokens, client aiohttp on uvloop;"
                 " simulator, proxies and client share the machine",
        "modes": "direct = client to engine; passthrough = through a bare aiohttp proxy"
                 " (bench/passthrough_proxy.py); sidecar = through llmkpi's sidecar",
        "rounds": args.rounds,
        "figures": figures,
        "targets": {"added_ttft_p50_ms_at_128": 1.0, "added_ttft_p99_ms_at_128": 5.0},
        "meets_targets": at128["p50"] < 1.0 and at128["p99"] < 5.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"sidecar RSS {figures['sidecar_rss_mb']:.0f} MiB; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
