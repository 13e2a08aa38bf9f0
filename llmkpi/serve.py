"""Wiring: builds the sidecar and the simulator with their sinks and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from engine_shim import journal
from engine_shim.dispatch import BoundedSink, FanOut
from engine_shim.engine_metrics import EngineReader
from engine_shim.journal import JournalWriter
from engine_shim.nginx_plane import NginxConfig, NginxPlane
from engine_shim.nginx_plane import missing as nginx_missing
from engine_shim.proxy import Sidecar, SidecarConfig
from engine_shim.records import RecordSink
from engine_shim.simulator.profiles import get_profile
from engine_shim.simulator.server import Disaggregation, Simulator, build_app
from engine_shim.tailer import JournalConsumer, Tailer, VolatileConsumer
from engine_shim.tenancy import TenantResolver, load_alias_file
from exporters.jsonl import JsonLinesSink
from exporters.mixpanel import (
    MixpanelJournalConsumer,
    MixpanelSender,
    MixpanelSink,
    MixpanelTarget,
    ProductEvents,
)
from exporters.otel import OtelExporter, otlp_exporter
from exporters.outbox import Outbox
from exporters.prometheus import PrometheusExporter
from llmkpi.settings import (
    DEFAULT_SALT,
    EventsSettings,
    PluginSettings,
    SidecarSettings,
    SinkSettings,
    TracingSettings,
)

log = logging.getLogger(__name__)


def install_fast_loop() -> None:
    """uvloop when present: the proxy's per-chunk work is mostly event-loop overhead."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def tracing_sink(tracing: TracingSettings) -> RecordSink | None:
    if not tracing.enabled:
        return None
    exporter = OtelExporter(service_name=tracing.service_name,
                            exporter=otlp_exporter(tracing.endpoint, tracing.protocol))
    log.info("spans to %s over OTLP %s (sample ratio %g)",
             tracing.endpoint or "the OTEL_EXPORTER_OTLP endpoint", tracing.protocol,
             tracing.sample_ratio)
    return exporter.sink


def mixpanel_target(events: EventsSettings) -> MixpanelTarget:
    return MixpanelTarget(api_host=events.api_host, project_id=events.project_id,
                          username=events.sa_username,
                          secret=events.sa_secret or events.api_secret, timeout=events.timeout)


def events_sink(events: EventsSettings, exporter: PrometheusExporter
                ) -> tuple[RecordSink | None, MixpanelSender | None]:
    """The product-event sink, and the sender thread when Mixpanel is configured."""
    if events.outbox is None:
        return None, None
    outbox = Outbox(events.outbox, max_events=events.max_events)
    exporter.watch_outbox(outbox.stats)
    sink = MixpanelSink(ProductEvents(outbox, events.token), delayed_after=events.delayed_after)
    sender = None
    if events.sends:
        sender = MixpanelSender(outbox, mixpanel_target(events))
        sender.start()
        log.info("product events to Mixpanel at %s via %s", events.api_host, events.outbox)
    else:
        log.info("product events kept in %s (no Mixpanel token)", events.outbox)
    return sink, sender


def ledger_sink(url: str | None, gpu: str, pod: str) -> RecordSink | None:
    if url is None:
        return None
    from collectors.ledger import LedgerSink
    from collectors.store import Store

    log.info("request ledger in %s", url)
    return LedgerSink(Store.open(url), gpu=gpu, pod=pod)


def build_sinks(settings: SinkSettings, exporter: PrometheusExporter,
                extra: Sequence[RecordSink] = ()) -> FanOut:
    """Every configured sink, each behind its own bounded queue: sidecar and plugin alike."""
    optional = (
        ledger_sink(settings.ledger_url, settings.gpu, settings.pod),
        events_sink(settings.events, exporter)[0],
        JsonLinesSink(settings.records_out) if settings.records_out is not None else None,
        tracing_sink(settings.tracing),
    )
    sinks = [exporter.sink, *(s for s in optional if s is not None), *extra]
    fan_out = FanOut([BoundedSink(s, capacity=settings.sink_queue) for s in sinks])
    exporter.watch_sinks(fan_out.stats)
    return fan_out


@dataclass
class JournalWiring:
    """The data plane's sink (records to the journal, engine snapshots to the sinks), the
    tailer feeding every sink from the journal, and what to close after the data plane."""

    plane: RecordSink
    tailer: Tailer
    snapshots: FanOut

    def close(self) -> None:
        self.plane.close()
        self.tailer.close()
        self.snapshots.close()


def build_journal(folder: Path, sinks: SinkSettings, exporter: PrometheusExporter,
                  max_bytes: int = 64 * 1024 * 1024) -> JournalWiring:
    """Every configured sink as a consumer of the journal: the ledger and the outbox durable
    (their position committed with their rows), the others volatile (docs/record-contract.md).
    Engine snapshots still go to the sinks directly, each behind its bounded queue. The
    sidecar's data planes and the vLLM plugin (LLMKPI_PLUGIN_JOURNAL) alike."""
    name = journal.journal_id(folder)
    consumers: list[JournalConsumer] = [VolatileConsumer(exporter.sink, folder)]
    snapshot_sinks: list[RecordSink] = [exporter.sink]
    if sinks.ledger_url is not None:
        from collectors.ledger import LedgerConsumer, LedgerSink
        from collectors.store import Store

        log.info("request ledger in %s, fed from the journal %s", sinks.ledger_url, folder)
        store = Store.open(sinks.ledger_url)
        consumers.append(LedgerConsumer(store, name, gpu=sinks.gpu))
        snapshot_sinks.append(LedgerSink(store, gpu=sinks.gpu, pod=sinks.pod))
    events, _sender = events_sink(sinks.events, exporter)
    if isinstance(events, MixpanelSink):
        consumers.append(MixpanelJournalConsumer(events, name))
        snapshot_sinks.append(events)
    if sinks.records_out is not None:
        consumers.append(VolatileConsumer(JsonLinesSink(sinks.records_out), folder))
    spans = tracing_sink(sinks.tracing)
    if spans is not None:
        consumers.append(VolatileConsumer(spans, folder))
    snapshots = FanOut([BoundedSink(s, capacity=sinks.sink_queue) for s in snapshot_sinks])
    exporter.watch_sinks(snapshots.stats)
    tailer = Tailer(folder, consumers)
    exporter.watch_journal(tailer.metrics)
    plane = JournalWriter(folder, max_bytes=max_bytes, snapshots=snapshots)
    tailer.start()
    return JournalWiring(plane, tailer, snapshots)


def serve_metrics(exporter: PrometheusExporter, settings: SidecarSettings) -> None:
    """The sidecar's /metrics on its own address and port, protected as configured."""
    web = settings.web_config
    exporter.serve(settings.metrics_port, settings.metrics_host, web)
    scheme = "https" if web is not None and web.tls else "http"
    log.info("metrics on %s://%s:%d/metrics%s", scheme, settings.metrics_host,
             settings.metrics_port, " (basic auth)" if web is not None and web.users else "")


def plugin_sink(settings: PluginSettings, exporter: PrometheusExporter) -> RecordSink:
    """The vLLM plugin's sinks: fed through a journal with LLMKPI_PLUGIN_JOURNAL (each
    durable sink resuming at its committed position after a kill), else directly."""
    if settings.journal is None:
        return build_sinks(settings.sinks, exporter)
    return build_journal(settings.journal, settings.sinks, exporter).plane


def _resolver_parts(settings: SidecarSettings) -> dict[str, str]:
    aliases = load_alias_file(settings.tenant_aliases).by_hash if settings.tenant_aliases \
        else {}
    if settings.key_salt == DEFAULT_SALT:
        log.warning("LLMKPI_KEY_SALT is not set: tenant ids from API keys use the default salt")
    return dict(aliases)


def nginx_config(settings: SidecarSettings, folder: Path) -> NginxConfig:
    return NginxConfig(
        upstream=settings.upstream, host=settings.host, port=settings.port, journal=folder,
        salt=settings.key_salt, aliases=_resolver_parts(settings),
        tenant_header=settings.tenant_header, feature_header=settings.feature_header,
        trusted_networks=tuple(str(n) for n in settings.trust().networks),
        tenant_secret=settings.tenant_header_secret,
        pod=settings.sinks.pod, sample_ratio=settings.sinks.tracing.sample_ratio,
        capture_content=settings.sinks.tracing.capture_content,
        workers=settings.nginx_workers, max_body_mib=settings.max_body_mib,
        role=settings.role)


def run_nginx_sidecar(settings: SidecarSettings, exporter: PrometheusExporter) -> None:
    """nginx relays and measures (engine_shim/nginx/llmkpi.lua) into the journal; this
    process feeds the sinks from it and polls the engine's /metrics."""
    temporary = settings.journal is None
    folder = settings.journal or Path(tempfile.mkdtemp(prefix="llmkpi-journal-"))
    durable = settings.sinks.ledger_url is not None or settings.sinks.events.outbox is not None
    if temporary and durable:
        log.warning("no --journal: a journal in %s, deleted at exit; give --journal DIR so a"
                    " restart resumes the ledger and outbox where they stopped", folder)
    config = nginx_config(settings, folder)  # a bad alias file fails before any port opens
    wiring = build_journal(folder, settings.sinks, exporter, settings.journal_max_bytes)
    plane = NginxPlane(config, max_bytes=settings.journal_max_bytes)
    try:
        plane.start()
        serve_metrics(exporter, settings)
        install_fast_loop()
        asyncio.run(_poll_engine(settings, wiring.snapshots))
    finally:
        plane.stop()
        wiring.close()  # the consumers drain what nginx wrote before it stopped
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


async def _poll_engine(settings: SidecarSettings, sink: RecordSink) -> None:
    """The engine reader alone (the data plane is nginx), until SIGINT or SIGTERM."""
    import aiohttp

    upstream = settings.upstream.rstrip("/")
    reader = EngineReader(upstream + "/metrics", sink, engine=upstream,
                          interval=settings.engine_poll_seconds, role=settings.role)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with aiohttp.ClientSession() as session:
        poller = asyncio.create_task(reader.run(session)) \
            if settings.engine_poll_seconds > 0 else None
        await stop.wait()
        if poller is not None:
            poller.cancel()


def build_sidecar(settings: SidecarSettings, sink: RecordSink) -> Sidecar:
    aliases = _resolver_parts(settings)
    resolver = TenantResolver(settings.key_salt, aliases, settings.tenant_header,
                              settings.trust())
    config = SidecarConfig(upstream=settings.upstream, feature_header=settings.feature_header,
                           pod=settings.sinks.pod,
                           engine_poll_interval=settings.engine_poll_seconds,
                           trace_sample_ratio=settings.sinks.tracing.sample_ratio,
                           capture_content=settings.sinks.tracing.capture_content,
                           max_body_bytes=settings.max_body_mib * 1024 * 1024,
                           role=settings.role)
    return Sidecar(config, sink, resolver)


async def _serve(app: web.Application, host: str, port: int, what: str) -> None:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    log.info("%s listening on http://%s:%d", what, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run_sidecar(settings: SidecarSettings) -> None:
    # Validate everything before opening a port, so a bad alias file fails fast.
    exporter = PrometheusExporter(max_tenants=settings.max_tenants,
                                  max_features=settings.max_features)
    if settings.data_plane == "nginx":
        problem = nginx_missing()
        if problem is None:
            run_nginx_sidecar(settings, exporter)
            return
        log.warning("nginx data plane unavailable (%s): the Python data plane serves", problem)
    sinks: FanOut | JournalWiring = build_sinks(settings.sinks, exporter) \
        if settings.journal is None else build_journal(settings.journal, settings.sinks,
                                                       exporter, settings.journal_max_bytes)
    sidecar = build_sidecar(settings, sinks if isinstance(sinks, FanOut) else sinks.plane)
    serve_metrics(exporter, settings)
    install_fast_loop()
    try:
        asyncio.run(_serve(sidecar.build_app(), settings.host, settings.port,
                           f"sidecar -> {settings.upstream}"))
    finally:
        sinks.close()


def run_simulator(host: str, port: int, profile_name: str, seed: int,
                  plugin_metrics_port: int | None = None, *,
                  per_request_metrics: bool = False, data_parallel: int = 1,
                  disaggregation: Disaggregation | None = None) -> None:
    profile = get_profile(profile_name)
    simulator = Simulator(profile, seed, per_request_metrics=per_request_metrics,
                          data_parallel=data_parallel, disaggregation=disaggregation)
    sink = None
    if plugin_metrics_port is not None:
        sink = simulated_plugin(simulator, plugin_metrics_port, host)
    install_fast_loop()
    try:
        asyncio.run(_serve(build_app(simulator), host, port,
                           f"simulator ({profile.name}, model {profile.model})"))
    finally:
        if sink is not None:
            sink.close()


def simulated_plugin(simulator: Simulator, port: int, host: str) -> BoundedSink:
    """What the llmkpi vLLM plugin would export if the simulated engine were vLLM: every
    finished request through the plugin's own conversion, including the engine-side queue,
    prefill and decode times a sidecar cannot see."""
    from engine_shim.vllm_stats import record_from_finished

    exporter = PrometheusExporter()
    sink = BoundedSink(exporter.sink, capacity=10_000)
    model = simulator.served_model

    def on_finish(stats: Any) -> None:
        sink.record(record_from_finished(stats, finished_at=time.time(), model=model, pod=""))

    for engine in simulator.engines:  # vLLM calls the plugin of every data-parallel engine
        engine.on_finish = on_finish
    exporter.serve(port, host)
    log.info("simulated plugin metrics on http://%s:%d/metrics", host, port)
    return sink
