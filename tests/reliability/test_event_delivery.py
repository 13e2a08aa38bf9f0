"""Product events against a hostile Mixpanel: it answers 500, 503 and 429, holds an answer
past the sender's timeout, or stores a batch and drops the connection without answering;
and `llmkpi events flush` is SIGKILLed again and again. Every event arrives, once by
`$insert_id`; every failed attempt is counted on /metrics."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporters.outbox import Outbox
from exporters.prometheus import OutboxCollector
from tests.integration.helpers import BackgroundApps
from tests.integration.mixpanel_like import SECRET, MixpanelLike
from tests.integration.test_mixpanel_events import fill, sender

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def scraped(outbox: Outbox) -> str:
    registry = CollectorRegistry()
    registry.register(OutboxCollector(outbox.stats))
    return generate_latest(registry).decode()


def test_every_failure_is_counted_and_every_event_arrives_once(
        tmp_path: Path, apps: BackgroundApps) -> None:
    # 7 failing answers in a row, then ok: 500, 503, 429, lost twice, slow (2 s past the
    # 1 s timeout) and 500 again
    receiver = MixpanelLike(script=["500", "503", "429", "lost", "lost", "slow", "500"],
                            slow_seconds=2.0)
    host = apps.serve(receiver.app())
    outbox = Outbox(tmp_path / "outbox.sqlite")
    ids = fill(outbox, 2500)
    assert sender(outbox, host).drain(timeout=60)
    assert set(receiver.accepted) == set(ids)
    # the lost and slow answers stored their batch: it came again and was kept once
    assert max(receiver.deliveries.values()) >= 2
    stats = outbox.stats()
    assert (stats.pending, stats.sent, stats.send_failures) == (0, 2500, 7)
    text = scraped(outbox)
    assert "llmkpi_events_send_failures_total 7.0" in text
    assert "llmkpi_events_sent_total 2500.0" in text


def test_events_flush_killed_again_and_again_delivers_every_event_once(
        tmp_path: Path, apps: BackgroundApps) -> None:
    """Four SIGKILLs at seeded random moments while a receiver fails one answer in three;
    the fifth run finishes. Nothing is lost, nothing kept twice, the outbox is empty."""
    rng = random.Random(17)
    receiver = MixpanelLike(script=[rng.choice(["ok", "ok", "500", "lost", "429"])
                                    for _ in range(60)])
    host = apps.serve(receiver.app())
    outbox_path = tmp_path / "outbox.sqlite"
    outbox = Outbox(outbox_path)
    ids = fill(outbox, 12_000)
    outbox.close()
    env = {**os.environ, "LLMKPI_MIXPANEL_TOKEN": "tok", "LLMKPI_MIXPANEL_API_SECRET": SECRET,
           "LLMKPI_MIXPANEL_TIMEOUT": "2"}
    flush = [str(ROOT / ".venv" / "bin" / "llmkpi"), "events", "flush", "--outbox",
             str(outbox_path), "--api-host", host, "--timeout", "120"]
    kills = 0
    for _ in range(4):
        before = receiver.requests
        run = subprocess.Popen(flush, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while receiver.requests < before + 1 + rng.randrange(3) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.05))
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            kills += 1
        run.wait(10)
    last = subprocess.run(flush, env=env, capture_output=True, text=True, timeout=180,
                          check=False)
    assert last.returncode == 0, last.stdout + last.stderr
    assert kills >= 3  # the runs were cut mid-way, not after they had finished
    assert set(receiver.accepted) == set(ids)  # every event, once by $insert_id
    stats = Outbox(outbox_path).stats()
    assert (stats.pending, stats.quarantined) == (0, 0)
    assert stats.sent == len(ids)  # the outbox deletes and counts in one transaction
    assert stats.send_failures >= 1
