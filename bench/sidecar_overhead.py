"""What the sidecar costs: TTFT added over calling the engine directly, and CPU per token.

The simulator runs in zero-delay mode, so the proxies' own cost dominates. Five modes
alternate round by round at each concurrency (1, 16, 64, 128 streams) so drift in the
machine hits all alike: direct to the engine; plain nginx (`proxy_buffering off`, the
physical limit of a relay); a bare aiohttp pass-through (any Python hop); the sidecar on
its Python data plane; the sidecar on its nginx data plane (nginx + Lua measuring, the
telemetry process feeding Prometheus from the journal). CPU is each proxy's whole process
tree (nginx master and workers, the telemetry process) per 1k streamed tokens.
`--runs 2` repeats everything and records both runs and their spread.
Figures go to bench/results/sidecar_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from engine_shim import nginx_plane
from llmkpi import processes
from llmkpi.serve import install_fast_loop

RESULTS = Path(__file__).parent / "results" / "sidecar_overhead.json"
LITELLM = "litellm[proxy]==1.108.5"  # the 1.108 line the issue measured (its newest
# release here whose proxy extras the package index has), in its own venv
LITELLM_VENV = Path(__file__).resolve().parent.parent / ".cache" / "bench" / "litellm-venv"
BODY: dict[str, Any] = {"messages": [{"role": "user", "content": "measure the proxy " * 20}],
                        "stream": True, "max_tokens": 32, "ignore_eos": True}
LEVELS = (1, 16, 64, 128)
LITELLM_KEY = "sk-llmkpi-bench-" + "0" * 32  # LiteLLM refuses to start without a master key
HEADERS = {"litellm": {"Authorization": f"Bearer {LITELLM_KEY}"}}
# at 128 streams: the nginx-plane sidecar's tree against plain nginx
TARGET_CPU_RATIO, TARGET_ADDED_TTFT_MS, TARGET_TELEMETRY_RSS_MB = 1.5, 10.0, 60.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_stream(session: aiohttp.ClientSession, url: str, headers: dict[str, str]
                     ) -> tuple[float, int]:
    start = time.perf_counter()
    first: float | None = None
    tokens = 0
    async with session.post(url + "/v1/chat/completions", json=BODY, headers=headers) as resp:
        async for line in resp.content:
            if b'"content":"' in line and b'"content":""' not in line:
                tokens += 1
                if first is None:
                    first = time.perf_counter()
    assert first is not None, "no token arrived"
    return first - start, tokens


async def block(url: str, streams: int, per_stream: int, headers: dict[str, str] | None = None
                ) -> tuple[list[float], int]:
    ttfts: list[float] = []
    tokens = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal tokens
            for _ in range(per_stream):
                ttft, n = await one_stream(session, url, headers or {})
                ttfts.append(ttft)
                tokens += n

        await asyncio.gather(*(worker() for _ in range(streams)))
    return ttfts, tokens


def tree_cpu(pid: int, *, descendants: bool = True) -> float:
    """User + system CPU seconds of a process and its descendants (nginx workers too)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)] if descendants else [root]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def tree_rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def measure(urls: dict[str, str], pids: dict[str, int], rounds: int, quick: bool
            ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for streams in LEVELS:
        per_stream = max(2, (40 if quick else 384) // streams)
        ttfts: dict[str, list[float]] = {m: [] for m in urls}
        cpu = dict.fromkeys(urls, 0.0)
        telemetry_cpu = 0.0
        tokens = dict.fromkeys(urls, 0)
        for mode, url in urls.items():
            asyncio.run(block(url, streams, 1, HEADERS.get(mode)))  # warm connections, caches
        for _ in range(rounds):
            for mode, url in urls.items():
                before = tree_cpu(pids[mode]) if mode in pids else 0.0
                alone = tree_cpu(pids[mode], descendants=False) if mode == "sidecar_nginx" \
                    else 0.0
                got, n = asyncio.run(block(url, streams, per_stream, HEADERS.get(mode)))
                if mode in pids:
                    cpu[mode] += tree_cpu(pids[mode]) - before
                if mode == "sidecar_nginx":
                    telemetry_cpu += tree_cpu(pids[mode], descendants=False) - alone
                tokens[mode] += n
                ttfts[mode].extend(got)
        p50 = {m: pct(v, 0.5) * 1e3 for m, v in ttfts.items()}
        p99 = {m: pct(v, 0.99) * 1e3 for m, v in ttfts.items()}
        added = {m: p50[m] - p50["direct"] for m in urls if m != "direct"}
        cpu_per_1k = {m: cpu[m] / tokens[m] * 1000 for m in pids if tokens[m]}
        row: dict[str, Any] = {
            "requests_per_mode": len(ttfts["direct"]),
            "ttft_ms": {m: {"p50": p50[m], "p99": p99[m]} for m in urls},
            "added_ttft_p50_ms": added, "cpu_seconds_per_1k_tokens": cpu_per_1k}
        if tokens.get("sidecar_nginx"):  # of which the telemetry process (the rest: nginx)
            row["sidecar_nginx_telemetry_cpu_seconds_per_1k_tokens"] = \
                telemetry_cpu / tokens["sidecar_nginx"] * 1000
        out[str(streams)] = row
        print(f"{streams:>4} streams: TTFT p50 added " + ", ".join(
            f"{m} {v:+.1f} ms" for m, v in added.items()) + "; CPU s/1k tokens " + ", ".join(
            f"{m} {v:.3f}" for m, v in cpu_per_1k.items()), flush=True)
    out["rss_mb"] = {m: tree_rss_mb(pid) for m, pid in pids.items()}
    if "sidecar_nginx" in pids:
        telemetry = psutil.Process(pids["sidecar_nginx"])
        out["rss_mb"]["sidecar_nginx_telemetry"] = telemetry.memory_info().rss / 2**20
    return out


def plain_nginx(tmp: Path, upstream: str, port: int) -> processes.Started:
    """nginx as a bare streaming reverse proxy (the baseline the nginx plane is held to)."""
    prefix = tmp / "plain-nginx"
    for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    target = upstream.removeprefix("http://")
    temps = "".join(f"    {kind}_temp_path {prefix / 'tmp' / name};\n" for kind, name in (
        ("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"),
        ("uwsgi", "uwsgi"), ("scgi", "scgi")))
    conf = prefix / "nginx.conf"
    conf.write_text(f"""daemon off;
worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
{temps}    upstream engine {{ server {target}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            proxy_pass http://engine;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
    return processes.start("plain-nginx", ["/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                           else str(shutil.which("nginx")), "-p", str(prefix),
                                           "-c", str(conf)], tmp)


def litellm_binary() -> tuple[Path | None, str]:
    """LiteLLM's proxy from its own venv (made on first use); (None, why) when it cannot be
    installed here, so the benchmark runs on without it."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary, LITELLM
    print(f"installing {LITELLM} into {LITELLM_VENV} (once)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True,
                       capture_output=True, timeout=300)
        done = subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", LITELLM],
                              capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"LiteLLM skipped: no venv ({exc})"
    if done.returncode != 0 or not binary.exists():
        shutil.rmtree(LITELLM_VENV, ignore_errors=True)
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"LiteLLM skipped: pip install {LITELLM} failed ({last})"
    return binary, LITELLM


def litellm_proxy(tmp: Path, binary: Path, upstream: str, model: str, port: int
                  ) -> processes.Started:
    """LiteLLM's proxy in front of the engine: one model, no database, one worker."""
    config = tmp / "litellm.yaml"
    config.write_text(f"""model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream}/v1
      api_key: none
litellm_settings:
  drop_params: true
""")
    return processes.start("litellm", [str(binary), "--config", str(config), "--host",
                                       "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                           tmp, env={"LITELLM_LOG": "ERROR", "NO_DOCS": "True",
                                     "LITELLM_MASTER_KEY": LITELLM_KEY,
                                     "HF_HUB_OFFLINE": "1"})  # no network for its tokenizer


def served_model(upstream: str) -> str:
    import urllib.request

    with urllib.request.urlopen(upstream + "/v1/models") as resp:
        return str(json.loads(resp.read())["data"][0]["id"])


def one_run(rounds: int, quick: bool, litellm: Path | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="llmkpi-bench-"))
    ports = {name: processes.free_port() for name in (
        "sim", "nginx", "passthrough", "sidecar_python", "sidecar_nginx", "litellm", "m1",
        "m2")}
    upstream = f"http://127.0.0.1:{ports['sim']}"
    env = {"LLMKPI_LOG_LEVEL": "WARNING"}
    started = {"direct": processes.start("simulator", ["simulate", "--port", str(ports["sim"]),
                                                       "--profile", "zero-delay"], tmp)}
    started["passthrough"] = processes.start("passthrough", [
        sys.executable, "-m", "bench.passthrough_proxy", upstream, str(ports["passthrough"])],
        tmp)
    started["sidecar_python"] = processes.start("sidecar-python", [
        "sidecar", "--upstream", upstream, "--port", str(ports["sidecar_python"]),
        "--metrics-port", str(ports["m1"]), "--data-plane", "python"], tmp, env=env)
    have_nginx = nginx_plane.missing() is None
    if have_nginx:
        started["nginx"] = plain_nginx(tmp, upstream, ports["nginx"])
        started["sidecar_nginx"] = processes.start("sidecar-nginx", [
            "sidecar", "--upstream", upstream, "--port", str(ports["sidecar_nginx"]),
            "--metrics-port", str(ports["m2"]), "--data-plane", "nginx", "--journal",
            str(tmp / "journal")], tmp, env=env)
    processes.wait_http(upstream + "/health", started["direct"])
    BODY["model"] = served_model(upstream)  # every client names the model (LiteLLM must)
    if litellm is not None:
        started["litellm"] = litellm_proxy(tmp, litellm, upstream, str(BODY["model"]),
                                           ports["litellm"])
    order = ["direct", "nginx", "passthrough", "sidecar_python", "sidecar_nginx", "litellm"]
    urls = {m: f"http://127.0.0.1:{ports['sim' if m == 'direct' else m]}" for m in order
            if m in started}
    with processes.running(*started.values()):
        for mode, url in urls.items():
            processes.wait_http(url + ("/health" if mode in ("direct", "passthrough")
                                       else "/health/liveliness" if mode == "litellm"
                                       else "/v1/models"), started[mode], timeout=120)
        pids = {m: started[m].process.pid for m in urls if m != "direct"}
        return measure(urls, pids, rounds, quick)


def verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The targets at 128 streams, judged on each run (both must meet them)."""
    checks = []
    for figures in runs:
        row = figures["128"]
        cpu = row["cpu_seconds_per_1k_tokens"]
        if "sidecar_nginx" not in cpu or "nginx" not in cpu:
            return {"judged": False, "why": "nginx with its Lua module is not installed"}
        added = row["added_ttft_p50_ms"]
        checks.append({
            "cpu_ratio_to_plain_nginx": cpu["sidecar_nginx"] / cpu["nginx"],
            "added_ttft_p50_ms_over_plain_nginx": added["sidecar_nginx"] - added["nginx"],
            "telemetry_rss_mb": figures["rss_mb"]["sidecar_nginx_telemetry"]})
    return {"judged": True, "runs": checks, "meets_targets": all(
        c["cpu_ratio_to_plain_nginx"] <= TARGET_CPU_RATIO
        and c["added_ttft_p50_ms_over_plain_nginx"] <= TARGET_ADDED_TTFT_MS
        and c["telemetry_rss_mb"] < TARGET_TELEMETRY_RSS_MB for c in checks)}


def spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per level and mode: the two runs' TTFT p50 added and CPU, min and max."""
    out: dict[str, Any] = {}
    for level in map(str, LEVELS):
        modes = runs[0][level]["added_ttft_p50_ms"]
        out[level] = {m: {
            "added_ttft_p50_ms": [min(r[level]["added_ttft_p50_ms"][m] for r in runs),
                                  max(r[level]["added_ttft_p50_ms"][m] for r in runs)],
            "cpu_seconds_per_1k_tokens": [
                min(r[level]["cpu_seconds_per_1k_tokens"].get(m, 0) for r in runs),
                max(r[level]["cpu_seconds_per_1k_tokens"].get(m, 0) for r in runs)]}
            for m in modes}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    install_fast_loop()
    litellm, litellm_note = (None, "LiteLLM left out (--no-litellm)") if args.no_litellm \
        else litellm_binary()
    print(litellm_note, flush=True)
    runs = []
    for n in range(args.runs):
        print(f"run {n + 1} of {args.runs}", flush=True)
        runs.append(one_run(args.rounds, args.quick, litellm))
    judged = verdict(runs)
    result = {
        "benchmark": "sidecar_overhead",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "nginx": _nginx_version()},
        "setup": "simulator zero-delay, chat stream of 32 tokens, client aiohttp on uvloop;"
                 " simulator, proxies and client share the machine; modes interleaved",
        "modes": "direct = client to engine; nginx = plain nginx reverse proxy"
                 " (proxy_buffering off); passthrough = a bare aiohttp proxy"
                 " (bench/passthrough_proxy.py); sidecar_python / sidecar_nginx = llmkpi's"
                 " sidecar on each data plane (CPU: the whole process tree); litellm ="
                 " LiteLLM's proxy, no database, one worker",
        "rounds": args.rounds,
        "litellm": litellm_note,
        "runs": runs,
        "spread": spread(runs) if len(runs) > 1 else None,
        "targets": {"cpu_ratio_to_plain_nginx_at_128": TARGET_CPU_RATIO,
                    "added_ttft_p50_ms_over_plain_nginx_at_128": TARGET_ADDED_TTFT_MS,
                    "telemetry_rss_mb": TARGET_TELEMETRY_RSS_MB},
        "verdict": judged,
        "meets_targets": bool(judged.get("meets_targets", False)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(judged, indent=2))
    print(f"written {args.out}")
    return 0


def _nginx_version() -> str | None:
    if shutil.which("nginx") is None:
        return None
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip() or None


if __name__ == "__main__":
    raise SystemExit(main())
