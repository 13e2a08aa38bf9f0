"""The demo's own contract: it stops every process it started, also when interrupted."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


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
    assert len(pids) == 2 and all(alive(p) for p in pids)
    time.sleep(6)  # started and under load
    demo.send_signal(sig)
    out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 130, out
    assert "Traceback" not in out
    assert not [p for p in pids if alive(p)]
