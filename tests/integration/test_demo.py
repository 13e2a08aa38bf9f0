"""The demo's own contract: `make demo` brings the stack up and answers, and it stops every
process it started, also when interrupted."""

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_interrupted_demo_stops_what_it_started(tmp_path: Path, sig: signal.Signals) -> None:
    demo = subprocess.Popen([".venv/bin/llmkpi", "demo", "--seconds", "60", "--months", "2",
                             "--workdir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    pid_file = tmp_path / "demo.pids"
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline and demo.poll() is None
        time.sleep(0.2)
    pids = [int(line.split()[0]) for line in pid_file.read_text().splitlines()]
    assert len(pids) >= 3 and all(alive(p) for p in pids)  # simulator, sidecar, kpi serve...
    time.sleep(6)  # started and under load
    demo.send_signal(sig)
    out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 130, out
    assert "Traceback" not in out
    assert not [p for p in pids if alive(p)]


def test_make_demo_short_headless_brings_up_the_page_and_writes_reports(tmp_path: Path) -> None:
    result = subprocess.run(["make", "demo", "DEMO_SECONDS=20", "DEMO_HEADLESS=1",
                             f"DEMO_WORKDIR={tmp_path}", "DEMO_MONTHS=3"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert re.search(r"page answered \(HTTP 200\)", out)
    assert re.search(r"executive view  http://127\.0\.0\.1:\d+", out)
    assert re.search(r"prometheus      http://127\.0\.0\.1:\d+/classic/alerts", out)
    kpi = json.loads(next((tmp_path / "reports").glob("kpi-*.json")).read_text())
    assert len(kpi["mappings"]) == 19 and kpi["north_star"]["revenue_per_employee"]["value"]
    cost = json.loads(next((tmp_path / "reports").glob("cost-*.json")).read_text())
    assert cost["gpu_bill"] > 0 and cost["requests"] > 0
    assert len(list((tmp_path / "dashboards").glob("*.json"))) == 5  # Disaggregated too
    assert len(list((tmp_path / "rules").glob("*.yml"))) == 4
    stopped = re.findall(r"(\S+) \(pid (\d+)\)", out.split("stopped: ")[-1])
    assert [name for name, _pid in stopped] == ["simulator", "sidecar", "kpi-serve",
                                                "prometheus", "app"]
    assert not [p for _name, p in stopped if alive(int(p))]
    assert not (tmp_path / "demo.pids").exists()  # no stale pid file once it has stopped


def test_ctrl_c_at_the_page_stops_the_page_too(tmp_path: Path) -> None:
    demo = subprocess.Popen([".venv/bin/llmkpi", "demo", "--seconds", "3", "--months", "2",
                             "--workdir", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(demo.stdout.readline, "")),
                              daemon=True)  # type: ignore[union-attr]
    reader.start()
    deadline = time.monotonic() + 240
    while not any("Ctrl-C stops everything" in line for line in lines):
        assert time.monotonic() < deadline and demo.poll() is None, "".join(lines)[-3000:]
        time.sleep(0.2)
    page = next(re.search(r"http://127\.0\.0\.1:\d+", line).group(0)  # type: ignore[union-attr]
                for line in lines if line.startswith("executive view"))
    with urllib.request.urlopen(page + "/_stcore/health") as resp:
        assert resp.read() == b"ok"
    alerts = next(line.split()[1] for line in lines if line.startswith("prometheus"))
    with urllib.request.urlopen(alerts) as resp:  # the printed URL answers
        assert resp.status == 200 and b"Alerts" in resp.read()
    pids = [int(line.split()[0]) for line in (tmp_path / "demo.pids").read_text().splitlines()]
    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=30) == 130
    reader.join(5)
    assert "Traceback" not in "".join(lines)
    assert any(line.startswith("stopped: simulator") for line in lines), "".join(lines)[-2000:]
    assert not [p for p in pids if alive(p)]


def test_the_pd_demo_records_each_request_once_and_prices_the_prefill_pod_from_now(
        tmp_path: Path) -> None:
    import sqlite3
    from datetime import UTC, datetime, timedelta

    started = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    result = subprocess.run([".venv/bin/llmkpi", "demo", "--serving", "pd", "--headless",
                             "--seconds", "8", "--months", "2", "--workdir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "prefill/decode disaggregated" in out and "Traceback" not in out
    stopped = re.findall(r"(\S+) \(pid (\d+)\)", out.split("stopped: ")[-1])
    assert [name for name, _pid in stopped] == ["simulator", "sidecar", "sidecar-prefill",
                                                "kpi-serve", "prometheus", "app"]
    with sqlite3.connect(tmp_path / "llmkpi.sqlite") as conn:
        live = dict(conn.execute(
            "select role, count(*) from ledger where pod like 'vllm-0%' and arrival >= ?"
            " group by role", (started.strftime("%Y-%m-%d %H:%M:%S"),)).fetchall())
        (since,) = conn.execute("select valid_from from gpu_inventory"
                                " where pod = 'vllm-0-prefill'").fetchone()
    # every client request the decode pod's sidecar saw, the prefill pod prefilled once
    assert live["decode"] > 10 and live["prefill"] == live["decode"], live
    # priced from the hour the demo ran in, never over the company's history
    assert abs(datetime.fromisoformat(since).replace(tzinfo=UTC) - started) <= timedelta(
        hours=1)
