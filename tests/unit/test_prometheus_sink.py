from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from engine_shim.records import EngineSnapshot, RequestRecord
from exporters.prometheus import LabelledPairCollector, PrometheusSink
from specs import catalog

BASE = RequestRecord(
    request_id="r1", tenant="acme", model="llama", feature="chat",
    endpoint="/v1/chat/completions", arrival_time=100.0, finish_time=101.0, outcome="ok",
    http_status=200, first_token_time=100.05, last_token_time=100.95,
    inter_token_gaps=(0.01, 0.02, 0.87), prompt_tokens=30, output_tokens=4,
    cached_prompt_tokens=16, trace_id="0af7651916cd43dd8448eb211c80319c")
LABELS = {"model": "llama", "tenant": "acme", "feature": "chat"}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_one_request_lands_in_every_series(registry: CollectorRegistry) -> None:
    sink = PrometheusSink(registry)
    sink.record(BASE)
    value = registry.get_sample_value
    assert value("llmkpi_requests_total", {**LABELS, "outcome": "ok", "code": "200"}) == 1
    assert value("llmkpi_prompt_tokens_total", LABELS) == 30
    assert value("llmkpi_generation_tokens_total", LABELS) == 4
    assert value("llmkpi_cached_prompt_tokens_total", LABELS) == 16
    assert value("llmkpi_time_to_first_token_seconds_sum", LABELS) == pytest.approx(0.05)
    assert value("llmkpi_time_to_first_token_seconds_bucket", {**LABELS, "le": "0.05"}) == 1
    assert value("llmkpi_time_to_first_token_seconds_bucket", {**LABELS, "le": "0.04"}) == 0
    assert value("llmkpi_inter_token_latency_seconds_count", LABELS) == 3
    assert value("llmkpi_e2e_request_latency_seconds_count", {**LABELS, "outcome": "ok"}) == 1


def test_trace_id_exemplars_only_in_openmetrics(registry: CollectorRegistry) -> None:
    PrometheusSink(registry).record(BASE)
    om = generate_openmetrics(registry).decode()
    assert '# {trace_id="0af7651916cd43dd8448eb211c80319c"}' in om
    ttft_lines = [x for x in om.splitlines()
                  if x.startswith("llmkpi_time_to_first_token_seconds_bucket") and "trace_id" in x]
    assert len(ttft_lines) == 1 and 'le="0.05"' in ttft_lines[0]
    assert "trace_id" not in generate_latest(registry).decode()


def test_2000_tenants_leave_at_most_k_plus_one_series(registry: CollectorRegistry) -> None:
    sink = PrometheusSink(registry, max_tenants=10)
    for i in range(2000):
        sink.record(replace(BASE, tenant=f"key-{i:016x}"))
    text = generate_latest(registry).decode()
    tenants = {part.split('"')[1] for line in text.splitlines()
               if line.startswith("llmkpi_requests_total{")
               for part in line.split(",") if part.startswith("tenant=")}
    assert len(tenants) <= 11 and "other" in tenants
    total = sum(registry.get_sample_value("llmkpi_requests_total",
                                          {**LABELS, "tenant": t, "outcome": "ok",
                                           "code": "200"}) or 0
                for t in tenants)
    assert total == 2000  # folding loses no request
    assert registry.get_sample_value("llmkpi_label_overflow_total", {"label": "tenant"}) == 1990


def test_an_admitted_tenant_keeps_its_series_and_no_count_is_lost(
        registry: CollectorRegistry) -> None:
    """25,000 requests from 50 tenants over 3 places: the first three keep their names for
    good (a heavy latecomer is `other`), and the counters add up to every request."""
    sink = PrometheusSink(registry, max_tenants=3)
    for n in range(25_000):
        sink.record(replace(BASE, tenant=f"t{n % 50}" if n < 24_000 else "heavy"))
    text = generate_latest(registry).decode()
    assert 'tenant="heavy"' not in text
    tenants = {"t0", "t1", "t2", "other"}
    counts = {t: registry.get_sample_value("llmkpi_requests_total", {
        **LABELS, "tenant": t, "outcome": "ok", "code": "200"}) for t in tenants}
    # t0..t2: 24,000 / 50 = 480 each; other: 25,000 - 3 * 480 = 23,560
    assert counts == {"t0": 480, "t1": 480, "t2": 480, "other": 23_560}


def test_negative_observation_is_dropped_not_raised(registry: CollectorRegistry) -> None:
    sink = PrometheusSink(registry)
    sink.record(replace(BASE, first_token_time=99.0))  # clock stepped back
    assert registry.get_sample_value("llmkpi_time_to_first_token_seconds_count", LABELS) == 0
    assert registry.get_sample_value("llmkpi_requests_total",
                                     {**LABELS, "outcome": "ok", "code": "200"}) == 1


def test_engine_snapshots_mirror_counters_across_restarts(registry: CollectorRegistry) -> None:
    sink = PrometheusSink(registry)
    labels = {"engine": "vllm-0", "model": "llama"}
    for total in (3.0, 5.0, 1.0):  # the engine restarted before the third poll
        sink.record_snapshot(EngineSnapshot(time=0.0, engine="vllm-0", model="llama", up=True,
                                            kv_cache_usage=0.5, preemptions_total=total))
    assert registry.get_sample_value("llmkpi_engine_preemptions_total", labels) == 6
    assert registry.get_sample_value("llmkpi_engine_kv_cache_usage_ratio", labels) == 0.5
    sink.record_snapshot(EngineSnapshot(time=0.0, engine="vllm-0", model="llama", up=False))
    assert registry.get_sample_value("llmkpi_engine_up", labels) == 0


def test_a_disaggregated_engine_exports_its_role_transfers_and_token_sources(
        registry: CollectorRegistry) -> None:
    sink = PrometheusSink(registry)
    labels = {"engine": "p0", "model": "llama"}
    for transferred, seconds in ((100.0, 0.5), (160.0, 0.75)):  # two polls of the prefill pod
        sink.record_snapshot(EngineSnapshot(
            time=0.0, engine="p0", model="llama", up=True, role="prefill", engine_kind="vllm",
            engines=2, kv_cache_usage=0.4, kv_cache_usage_max=0.6,
            prompt_tokens_transferred_total=transferred, kv_transfer_seconds_total=seconds,
            kv_transfer_failures_total=1.0, kv_expired_total=0.0))
    info = {**labels, "role": "prefill", "engine_kind": "vllm"}
    assert registry.get_sample_value("llmkpi_engine_info", info) == 1
    assert registry.get_sample_value("llmkpi_engine_data_parallel_engines", labels) == 2
    assert registry.get_sample_value("llmkpi_engine_kv_cache_usage_max_ratio", labels) == 0.6
    assert registry.get_sample_value("llmkpi_engine_prompt_tokens_by_source_total",
                                     {**labels, "source": "external_kv_transfer"}) == 160
    assert registry.get_sample_value("llmkpi_engine_kv_transfer_seconds_total", labels) == 0.75
    assert registry.get_sample_value("llmkpi_engine_kv_transfer_failures_total", labels) == 1
    assert registry.get_sample_value("llmkpi_engine_kv_expired_requests_total", labels) == 0


def test_sink_health_collector(registry: CollectorRegistry) -> None:
    registry.register(LabelledPairCollector(catalog.SINK_DROPPED, catalog.SINK_FAILED,
                                            lambda: {"prometheus": (3, 1)}))
    assert registry.get_sample_value("llmkpi_sink_dropped_records_total",
                                     {"sink": "prometheus"}) == 3
    assert registry.get_sample_value("llmkpi_sink_failed_records_total",
                                     {"sink": "prometheus"}) == 1
