"""Product events to Mixpanel through a durable outbox: nothing lost, nothing duplicated.

`ProductEvents.track()` builds the event with the official `mixpanel` client, whose
pluggable consumer here is the outbox: the event is committed to disk before `track`
returns. `MixpanelSender` (a thread, or `llmkpi events flush`) posts batches to `/import`
(up to 2,000 events / 10 MB), deletes what Mixpanel accepted, quarantines what it rejected
with its reason, and backs off on 429, 5xx, timeouts and network errors. The library's own
Consumer is not used for sending: it reduces a 400's `failed_records` to a bare exception
and does not retry 429. With no token configured nothing is sent and the outbox is the local
event log.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mixpanel
import requests

from engine_shim.records import EngineSnapshot, RequestRecord
from exporters.events import insert_id, validate
from exporters.outbox import Outbox, Pending

log = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 2000
MAX_BATCH_BYTES = 10 * 1024 * 1024
GZIP_ABOVE = 64 * 1024
CostOf = Callable[[RequestRecord], tuple[float, str] | None]


class OutboxConsumer:
    """A `mixpanel` consumer (`send(endpoint, json_message, ...)`) that writes to the outbox."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.dropped = 0

    def send(self, endpoint: str, json_message: str, api_key: Any = None,
             api_secret: Any = None) -> None:
        if endpoint != "imports":
            raise ValueError(f"llmkpi sends events through /import only, not {endpoint!r}")
        event = json.loads(json_message)
        if not self.outbox.add(event["properties"]["$insert_id"], event["event"], json_message):
            self.dropped += 1


class ProductEvents:
    """The one small API other modules call to emit product events."""

    def __init__(self, outbox: Outbox, token: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.consumer = OutboxConsumer(outbox)
        self.client = mixpanel.Mixpanel(token or "local-only", consumer=self.consumer)
        self.clock = clock

    def track(self, event: str, distinct_id: str, properties: dict[str, Any] | None = None,
              *, at: float | None = None, key: str | None = None) -> str | None:
        """Commit the event durably; its `$insert_id`, or None when the full outbox dropped it."""
        props = dict(properties or {})
        validate(event, distinct_id, props)
        time_ms = round((self.clock() if at is None else at) * 1000)
        event_id = insert_id(event, distinct_id, time_ms, key, props)
        dropped = self.consumer.dropped
        self.client.import_data(None, distinct_id, event, time_ms,
                                {**props, "$insert_id": event_id})
        return None if self.consumer.dropped > dropped else event_id


@dataclass(frozen=True)
class MixpanelTarget:
    """Where and as whom to send. A service account (username/secret/project) or API secret."""

    api_host: str = "https://api.mixpanel.com"
    project_id: str | None = None
    username: str | None = None
    secret: str | None = None
    timeout: float = 10.0

    def auth(self) -> tuple[str, str] | None:
        if self.username and self.secret:
            return (self.username, self.secret)
        if self.secret:
            return (self.secret, "")
        return None


class MixpanelSender:
    """Drains the outbox to Mixpanel's /import, one batch at a time, with backoff."""

    def __init__(self, outbox: Outbox, target: MixpanelTarget, *,
                 max_events: int = MAX_BATCH_EVENTS, max_bytes: int = MAX_BATCH_BYTES,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.outbox, self.target = outbox, target
        self.max_events, self.max_bytes = max_events, max_bytes
        self.sleep = sleep
        self.session = requests.Session()
        self.failures = 0
        self.retries = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one batch ---------------------------------------------------------------------------
    def send_once(self) -> tuple[int, float]:
        """Send one batch; (events settled, seconds to wait before the next try)."""
        batch = self.outbox.take(self.max_events, self.max_bytes)
        if not batch:
            return 0, 0.0
        body = ("[" + ",".join(p.body for p in batch) + "]").encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if len(body) > GZIP_ABOVE:
            body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
        params = {"strict": "1"}
        if self.target.project_id:
            params["project_id"] = self.target.project_id
        self.outbox.attempted([p.seq for p in batch])
        try:
            response = self.session.post(
                self.target.api_host.rstrip("/") + "/import", params=params, data=body,
                headers=headers, auth=self.target.auth(), timeout=(3.05, self.target.timeout))
        except requests.RequestException as exc:
            return 0, self._backoff(f"{type(exc).__name__}: {exc}")
        return self._settle(batch, response)

    def _settle(self, batch: list[Pending], response: requests.Response) -> tuple[int, float]:
        status = response.status_code
        if status == 200:
            self.outbox.accepted([p.seq for p in batch])
            self.failures = 0
            return len(batch), 0.0
        if status == 400:
            rejected = self._rejected(batch, response)
            self.outbox.quarantine(rejected)
            self.outbox.accepted([p.seq for p in batch if p.seq not in rejected])
            self.failures = 0
            log.warning("Mixpanel rejected %d of %d events; quarantined", len(rejected),
                        len(batch))
            return len(batch), 0.0
        if status == 413 and self.max_events > 1:
            self.max_events = max(1, self.max_events // 2)
            return 0, 0.0
        retry_after = response.headers.get("Retry-After")
        wait = self._backoff(f"HTTP {status}: {response.text[:200]}")
        if status == 429 and retry_after:
            with contextlib.suppress(ValueError):
                wait = max(wait, float(retry_after))
        if status in (401, 403):
            log.error("Mixpanel refused our credentials (HTTP %d); events stay queued", status)
            wait = max(wait, 60.0)
        return 0, wait

    @staticmethod
    def _rejected(batch: list[Pending], response: requests.Response) -> dict[int, str]:
        """Map Mixpanel's failed_records (by index, else $insert_id) to outbox rows."""
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        failed = doc.get("failed_records") if isinstance(doc, dict) else None
        if not failed:
            reason = (doc.get("error") if isinstance(doc, dict) else None) or response.text
            return {p.seq: f"batch rejected: {str(reason)[:500]}" for p in batch}
        by_id = {p.insert_id: p.seq for p in batch}
        rejected: dict[int, str] = {}
        for item in failed:
            index = item.get("index")
            seq = (batch[index].seq if isinstance(index, int) and 0 <= index < len(batch)
                   else by_id.get(str(item.get("$insert_id"))))
            if seq is not None:
                rejected[seq] = f"{item.get('field', '')}: {item.get('message', '')}".strip()
        return rejected

    def _backoff(self, error: str) -> float:
        self.failures += 1
        self.retries += 1
        self.outbox.count_send_failure()  # on /metrics, also from `events flush`
        self.last_error = error
        log.info("Mixpanel send failed (%s); retry %d", error, self.failures)
        return float(min(30.0, 0.25 * 2 ** min(self.failures, 8)) * random.uniform(0.5, 1.0))

    # -- driving it --------------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Send until nothing is pending or `timeout` passes; True when drained."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            settled, wait = self.send_once()
            if settled == 0 and wait == 0.0 and not self.outbox.take(1, self.max_bytes):
                return True
            if wait:
                self.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        return not self.outbox.take(1, self.max_bytes)

    def start(self, idle: float = 0.5) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    settled, wait = self.send_once()
                except Exception:  # keep sending whatever happens; the events are on disk
                    log.exception("Mixpanel sender error")
                    settled, wait = 0, 5.0
                if wait or not settled:
                    self._stop.wait(wait or idle)

        self._thread = threading.Thread(target=loop, name="mixpanel-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class MixpanelSink:
    """RecordSink: each request becomes `llm_request_completed`; engine edges become
    `resource_spike`, `downtime_experienced`, `recovery_noticed`; slow first tokens become
    `response_delayed`."""

    name = "mixpanel"

    def __init__(self, events: ProductEvents, *, delayed_after: float = 2.0,
                 spike_at: float = 0.9, cost_of: CostOf | None = None) -> None:
        self.events = events
        self.delayed_after, self.spike_at = delayed_after, spike_at
        self.cost_of = cost_of
        self._engine_state: dict[tuple[str, str], tuple[bool, bool]] = {}

    def record(self, record: RequestRecord) -> None:
        if record.role == "prefill":  # a P/D prefill pod's work: the client's request is
            return  # the decode pod's record, one event (never two for one request)
        ttft = record.time_to_first_token
        props: dict[str, Any] = {
            "model": record.model, "feature": record.feature, "outcome": record.outcome,
            "input_tokens": record.prompt_tokens or 0, "output_tokens": record.output_tokens or 0,
            "e2e_seconds": round(record.e2e_latency, 6), "endpoint": record.endpoint,
            "source": record.source}
        if ttft is not None:
            props["ttft_seconds"] = round(ttft, 6)
        if record.finish_reason:
            props["finish_reason"] = record.finish_reason
        cost = self.cost_of(record) if self.cost_of else None
        if cost is not None:
            props["cost"], props["currency"] = cost
        key = f"{record.source}:{record.request_id}"
        self.events.track("llm_request_completed", record.tenant, props, at=record.finish_time,
                          key=key)
        if ttft is not None and ttft > self.delayed_after:
            self.events.track("response_delayed", record.tenant,
                              {"model": record.model, "seconds": round(ttft, 6),
                               "feature": record.feature},
                              at=record.first_token_time, key=key)

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        where = (snapshot.engine, snapshot.model)
        spiking = (snapshot.kv_cache_usage or 0.0) >= self.spike_at
        # Downtime and recovery are transitions we saw: an engine first seen without /metrics
        # is not "down" (it may never expose metrics).
        was_up, was_spiking = self._engine_state.get(where, (snapshot.up, False))
        self._engine_state[where] = (snapshot.up, spiking)
        service = f"{snapshot.engine} {snapshot.model}"
        if was_up and not snapshot.up:
            self.events.track("downtime_experienced", snapshot.engine, {"service": service},
                              at=snapshot.time)
        elif snapshot.up and not was_up:
            self.events.track("recovery_noticed", snapshot.engine, {"service": service},
                              at=snapshot.time)
        if spiking and not was_spiking:
            self.events.track("resource_spike", snapshot.engine,
                              {"resource": "kv_cache", "value": snapshot.kv_cache_usage,
                               "service": service}, at=snapshot.time)

    def close(self) -> None:
        """The outbox already holds everything tracked."""


class MixpanelJournalConsumer:
    """The outbox as a durable journal consumer (engine_shim/tailer.py): a batch's events
    and the journal position after it commit in one SQLite transaction, so a killed
    telemetry process resumes exactly after the last committed batch."""

    name = "mixpanel"

    def __init__(self, sink: MixpanelSink, journal: str) -> None:
        self.sink = sink
        self.outbox = sink.events.outbox
        self.key = f"mixpanel:{journal}"

    def resume_at(self) -> tuple[int, int]:
        return self.outbox.position(self.key)

    def consume(self, records: Sequence[RequestRecord], end: tuple[int, int]) -> None:
        with self.outbox.transaction():
            for record in records:
                self.sink.record(record)
            self.outbox.set_position(self.key, end)

    def close(self) -> None:
        """Everything consumed is committed already."""
