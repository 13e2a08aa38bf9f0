"""Product events through the durable outbox to a Mixpanel-like receiver: none lost, none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporters.mixpanel import MixpanelSender, MixpanelTarget, ProductEvents
from exporters.outbox import Outbox
from tests.integration.helpers import BackgroundApps
from tests.integration.mixpanel_like import SECRET, MixpanelLike

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def fill(outbox: Outbox, count: int, future_every: int = 0) -> list[str]:
    """Track `count` feature_engaged events; every `future_every`-th is stamped 2 h ahead."""
    events = ProductEvents(outbox, token="tok", clock=lambda: 1_790_000_000.0)
    ids = []
    for i in range(count):
        ahead = future_every and i % future_every == future_every - 1
        at = time.time() + 7200 if ahead else 1_790_000_000.0 + i
        event_id = events.track("feature_engaged", f"user-{i % 50}",
                                {"feature": f"f{i % 7}", "n": i}, at=at)
        assert event_id is not None
        ids.append(event_id)
    return ids


def sender(outbox: Outbox, host: str, **kwargs: int) -> MixpanelSender:
    return MixpanelSender(outbox, MixpanelTarget(api_host=host, secret=SECRET, timeout=1.0),
                          sleep=lambda s: time.sleep(min(s, 0.3)), **kwargs)


def test_retries_429_503_and_quarantines_a_partial_400(tmp_path: Path,
                                                       apps: BackgroundApps) -> None:
    receiver = MixpanelLike(script=["503", "429", "ok", "ok"])
    host = apps.serve(receiver.app())
    outbox = Outbox(tmp_path / "outbox.sqlite")
    ids = fill(outbox, 4500, future_every=1000)
    assert sender(outbox, host).drain(timeout=30)
    future = {ids[i] for i in range(999, 4500, 1000)}
    assert set(receiver.accepted) == set(ids) - future
    assert max(receiver.batch_sizes) <= 2000
    stats = outbox.stats()
    assert (stats.pending, stats.quarantined, stats.sent) == (0, 4, 4496)
    quarantined = outbox.quarantined()
    assert {q[0] for q in quarantined} == future
    assert all("1 hour ahead" in q[2] for q in quarantined)


def test_batches_respect_the_byte_limit(tmp_path: Path, apps: BackgroundApps) -> None:
    receiver = MixpanelLike()
    host = apps.serve(receiver.app())
    outbox = Outbox(tmp_path / "outbox.sqlite")
    ids = fill(outbox, 300)
    size = len(outbox.events()[0])
    assert sender(outbox, host, max_bytes=50 * size).drain(timeout=30)
    assert set(receiver.accepted) == set(ids)
    assert max(receiver.batch_sizes) <= 50


def test_a_slow_answer_times_out_and_the_redelivery_is_deduplicated(
        tmp_path: Path, apps: BackgroundApps) -> None:
    receiver = MixpanelLike(script=["slow"], slow_seconds=2.0)
    host = apps.serve(receiver.app())
    outbox = Outbox(tmp_path / "outbox.sqlite")
    ids = fill(outbox, 100)
    assert sender(outbox, host).drain(timeout=30)
    assert set(receiver.accepted) == set(ids)
    assert set(receiver.deliveries.values()) == {2}  # sent twice, kept once by $insert_id


def test_tracking_is_idempotent_bounded_and_works_without_mixpanel(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite", max_events=10)
    events = ProductEvents(outbox, token=None, clock=lambda: 1_790_000_000.0)
    first = events.track("nps_submitted", "u1", {"score": 9}, key="survey-1")
    again = events.track("nps_submitted", "u1", {"score": 9}, key="survey-1")
    assert first == again and outbox.stats().pending == 1
    dropped = [events.track("feature_engaged", "u2", {"feature": "x", "i": i}) for i in range(12)]
    assert dropped.count(None) == 3 and outbox.stats().dropped == 3
    stored = [json.loads(body) for body in outbox.events()]
    assert stored[0]["event"] == "nps_submitted"
    assert stored[0]["properties"]["$insert_id"] == first
    assert stored[0]["properties"]["mp_lib"] == "python"  # built by the mixpanel client
    with pytest.raises(ValueError, match="property 'score' must be 0-10"):
        events.track("nps_submitted", "u1", {"score": 11})
    with pytest.raises(ValueError, match="unknown event 'nps'"):
        events.track("nps", "u1", {})


PRODUCER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.integration.test_mixpanel_events import fill
from exporters.outbox import Outbox
ids = fill(Outbox(Path({outbox!r})), 6000, future_every=1500)
Path({ids!r}).write_text("\\n".join(ids))
"""


def test_sigkill_mid_stream_then_restart_delivers_every_event_once(
        tmp_path: Path, apps: BackgroundApps) -> None:
    receiver = MixpanelLike(script=["ok", "slow", "503", "429"], slow_seconds=5.0)
    host = apps.serve(receiver.app())
    outbox_path, ids_path = tmp_path / "outbox.sqlite", tmp_path / "ids.txt"
    subprocess.run([sys.executable, "-c", PRODUCER.format(root=str(ROOT),
                                                          outbox=str(outbox_path),
                                                          ids=str(ids_path))], check=True)
    ids = ids_path.read_text().split()
    env = {**os.environ, "LLMKPI_MIXPANEL_TOKEN": "tok", "LLMKPI_MIXPANEL_API_SECRET": SECRET,
           "LLMKPI_MIXPANEL_TIMEOUT": "60"}
    flush = [str(ROOT / ".venv" / "bin" / "llmkpi"), "events", "flush", "--outbox",
             str(outbox_path), "--api-host", host, "--timeout", "60"]
    first = subprocess.Popen(flush, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert receiver.holding.wait(30), "the sender never reached the slow answer"
    first.send_signal(signal.SIGKILL)  # Mixpanel has the second batch; we never heard back
    first.wait(10)
    held = len(receiver.accepted)
    assert 0 < held < len(ids)
    second = subprocess.run(flush, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    future = {ids[i] for i in range(1499, 6000, 1500)}
    assert set(receiver.accepted) == set(ids) - future  # every valid event, exactly once
    assert max(receiver.deliveries.values()) == 2  # the batch in flight at the kill, resent
    assert "pending 0, quarantined 4" in second.stdout


def test_the_sidecar_emits_request_events_through_the_outbox(tmp_path: Path,
                                                             apps: BackgroundApps) -> None:
    import asyncio

    from tests.integration.helpers import sidecar
    from tests.integration.test_otel_traces import send
    from tests.integration.test_sidecar_fidelity import scripted_upstream

    receiver = MixpanelLike(script=["503"])
    host = apps.serve(receiver.app())
    env = {"LLMKPI_OUTBOX": str(tmp_path / "events.sqlite"), "LLMKPI_MIXPANEL_TOKEN": "tok",
           "LLMKPI_MIXPANEL_API_SECRET": SECRET, "LLMKPI_MIXPANEL_API_HOST": host}
    upstream = apps.serve(scripted_upstream([]))
    with sidecar(tmp_path, upstream, env=env) as proc:
        for tenant in ("acme", "beta", "acme"):
            asyncio.run(send(proc.url, {"X-Tenant": tenant, "X-Feature": "search"}))
        records = proc.records(expect=3)
        deadline = time.monotonic() + 20
        while len(receiver.accepted) < 3:
            assert time.monotonic() < deadline, "events never reached Mixpanel"
            time.sleep(0.1)
        text = proc.metrics_text(requests=3)
    events = list(receiver.accepted.values())
    assert {e["event"] for e in events} == {"llm_request_completed"}
    assert sorted(e["properties"]["distinct_id"] for e in events) == ["acme", "acme", "beta"]
    first = events[0]["properties"]
    assert first["model"] and first["feature"] == "search" and first["outcome"] == "ok"
    assert first["output_tokens"] > 0 and first["ttft_seconds"] > 0
    assert {e["properties"]["time"] for e in events} == {round(r.finish_time * 1000)
                                                          for r in records}
    assert "llmkpi_events_sent_total 3.0" in text
    assert "llmkpi_events_pending 0.0" in text
