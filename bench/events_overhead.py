"""What publishing costs: `track()` per event, events/s to a local /import, span per request.

`track()` commits each event to the SQLite outbox (WAL) before returning; in the sidecar it
runs on a sink thread, never on the request path. Figures go to
bench/results/events_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from engine_shim.records import RequestRecord
from exporters.mixpanel import MixpanelSender, MixpanelSink, MixpanelTarget, ProductEvents
from exporters.otel import OtelExporter
from exporters.outbox import Outbox
from llmkpi import processes

RESULTS = Path(__file__).parent / "results" / "events_overhead.json"


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_us": ordered[len(ordered) // 2] * 1e6,
            "p99_us": ordered[int(len(ordered) * 0.99)] * 1e6,
            "mean_us": sum(ordered) / len(ordered) * 1e6}


def timed(calls: int, call: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return out


def record(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"r{i}", tenant=f"tenant-{i % 20}", model="llama", feature="chat",
        endpoint="/v1/chat/completions", arrival_time=1_790_000_000.0 + i,
        finish_time=1_790_000_001.0 + i, outcome="ok", http_status=200,
        first_token_time=1_790_000_000.05 + i, inter_token_gaps=tuple([0.01] * 100),
        prompt_tokens=300, output_tokens=101, trace_id=f"{i:032x}", span_id=f"{i + 1:016x}")


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def accept_all() -> tuple[str, Callable[[], None]]:
    async def handle(request: web.Request) -> web.Response:
        events = json.loads(await request.read())
        return web.json_response({"code": 200, "num_records_imported": len(events),
                                  "status": "OK"})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/import", handle)
    loop = asyncio.new_event_loop()
    port = processes.free_port()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)

    return f"http://127.0.0.1:{port}", stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="llmkpi-bench-events-"))
    result: dict[str, Any] = {"benchmark": "events_overhead",
                              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "machine": {"python": platform.python_version(),
                                          "platform": platform.platform()}}

    outbox = Outbox(tmp / "track.sqlite")
    events = ProductEvents(outbox, token="t")
    result["track_per_event"] = percentiles(timed(args.events, lambda i: events.track(
        "feature_engaged", f"user-{i % 100}", {"feature": "search", "i": i})))
    sink = MixpanelSink(ProductEvents(Outbox(tmp / "sink.sqlite"), token="t"))
    result["mixpanel_sink_per_request"] = percentiles(timed(args.events,
                                                            lambda i: sink.record(record(i))))

    host, stop = accept_all()
    sender = MixpanelSender(outbox, MixpanelTarget(api_host=host, secret="s"))
    start = time.perf_counter()
    assert sender.drain(timeout=300)
    seconds = time.perf_counter() - start
    stop()
    result["sustained_events_per_second"] = args.events / seconds

    otel = OtelExporter(service_name="bench", processor=BatchSpanProcessor(Discard()))
    result["span_per_request"] = percentiles(timed(args.events,
                                                   lambda i: otel.sink.record(record(i))))
    otel.close()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    for key in ("track_per_event", "mixpanel_sink_per_request", "span_per_request"):
        row = result[key]
        print(f"{key:28s} p50 {row['p50_us']:7.1f} us   p99 {row['p99_us']:7.1f} us")
    print(f"sustained to local /import: {result['sustained_events_per_second']:.0f} events/s;"
          f" written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
