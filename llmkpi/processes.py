"""Starting and stopping the stack's own processes (demo, tests, benchmarks), by process id."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmkpi.settings import child_environment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(name: str, args: list[str], log_dir: Path,
          env: Mapping[str, str] | None = None) -> Started:
    """Start `python -m llmkpi ARGS` (or any argv starting with '/') with its log in log_dir."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    argv = args if args[0].startswith("/") else [sys.executable, "-m", "llmkpi", *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   env=child_environment(env),
                                   start_new_session=True)
    return Started(name, process, log_path)


def wait_http(url: str, started: Started | None = None, timeout: float = 30.0) -> None:
    """Wait until `url` answers 2xx; fail with the process's log if it died first."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if started is not None and started.process.poll() is not None:
            raise RuntimeError(f"{started.name} exited with {started.process.returncode}:\n"
                               f"{started.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    tail = started.log_tail() if started else ""
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s ({last})\n{tail}")


def stop(started: Started, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL if it lingers."""
    proc = started.process
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextlib.contextmanager
def running(*items: Started) -> Iterator[tuple[Started, ...]]:
    try:
        yield items
    finally:
        for item in reversed(items):
            stop(item)


def start_vllm(name: str, python: Path, model: Path, port: int, log_dir: Path, *,
               plugin: bool = True, env: Mapping[str, str] | None = None,
               extra: tuple[str, ...] = ()) -> Started:
    """vLLM's OpenAI server on the CPU with a small KV cache, so a tiny model feels pressure.

    40 blocks of 128 tokens (5,120 tokens) fill with a couple of dozen requests; eager mode
    starts in ~30 s instead of ~75 s with torch.compile. `plugin=False` keeps vLLM from loading
    llmkpi's stat logger (VLLM_PLUGINS names the plugins allowed; none is called this).
    """
    engine_env = {"VLLM_CPU_KVCACHE_SPACE": "1", **(env or {})}
    if not plugin:
        engine_env["VLLM_PLUGINS"] = "llmkpi-disabled"
    return start(name, [str(python), "-m", "vllm.entrypoints.openai.api_server",
                        "--model", str(model), "--served-model-name", "tiny",
                        "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024",
                        "--num-gpu-blocks-override", "40", "--max-num-seqs", "16",
                        "--enforce-eager", "--seed", "0", *extra], log_dir, env=engine_env)


def prometheus_config(targets: Mapping[str, str], rule_files: Sequence[Path] = (),
                      interval: str = "5s",
                      labels: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, object]:
    """Scrape `targets` (job -> host:port, or host:port/path for a path other than
    /metrics), adding `labels[job]` to a job's series as service discovery would (the pod
    name), and evaluate `rule_files`."""
    jobs = []
    for job, target in targets.items():
        address, _, path = target.partition("/")
        scrape: dict[str, object] = {"job_name": job, "static_configs": [
            {"targets": [address], "labels": dict((labels or {}).get(job, {}))}]}
        if path:
            scrape["metrics_path"] = "/" + path
        jobs.append(scrape)
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p.resolve()) for p in rule_files],
        "scrape_configs": jobs,
    }


def start_prometheus(binary: str, config: Mapping[str, object], config_path: Path,
                     data_dir: Path, log_dir: Path, *flags: str,
                     name: str = "prometheus") -> tuple[Started, str]:
    """A Prometheus server on a free loopback port; returns it and its base URL."""
    port = free_port()
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
    started = start(name, [
        binary, f"--config.file={config_path.resolve()}",
        f"--storage.tsdb.path={data_dir.resolve()}",
        f"--web.listen-address=127.0.0.1:{port}", *flags], log_dir)
    return started, f"http://127.0.0.1:{port}"
