"""Every metric llmkpi exports, declared once: name, type, unit, help, labels, bucket family.

Dashboards and alert rules read names from here; nothing else retypes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from specs.availability import SERVER_FAILURE_OUTCOMES, THROTTLED_STATUS

MetricType = Literal["counter", "gauge", "histogram"]

PREFIX = "llmkpi_"
REQUEST_LABELS = ("model", "tenant", "feature")
# The availability rule of engine_shim.records as label matchers on REQUESTS, for PromQL
SERVER_FAILURE_MATCHER = 'outcome=~"' + "|".join(SERVER_FAILURE_OUTCOMES) + '"'
THROTTLED_MATCHER = f'code="{THROTTLED_STATUS}"'
ENGINE_LABELS = ("engine", "model")


class BucketFamily(NamedTuple):
    """Histogram upper bounds (seconds unless the unit says otherwise) and why they are so."""

    name: str
    bounds: tuple[float, ...]
    doc: str


TTFT_BUCKETS = BucketFamily(
    "time_to_first_token",
    (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1,
     0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 7.5, 10.0,
     20.0, 40.0, 80.0, 160.0, 640.0, 2560.0),
    "vLLM's range (1 ms to 2560 s) with extra bounds between 10 ms and 500 ms, where an SLO"
    " of 'p95 TTFT under 0.5 s' is decided, so histogram_quantile interpolates over narrow bins.",
)
ITL_BUCKETS = BucketFamily(
    "inter_token_latency",
    (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
     0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0),
    "Decode steps of an 8B model on one H100 take 5-30 ms; vLLM starts at 10 ms, which puts"
    " every healthy gap in one bin. We start at 1 ms and keep vLLM's 80 s ceiling for stalls.",
)
E2E_BUCKETS = BucketFamily(
    "e2e_request_latency",
    (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0,
     20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0),
    "Whole requests run from tens of milliseconds (short completions) to hours (batch"
    " jobs); vLLM's bounds from 0.3 s upward, plus three below for short chat turns.",
)
QUEUE_BUCKETS = BucketFamily(
    "request_queue_time",
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
     30.0, 60.0, 120.0, 300.0, 600.0),
    "Waiting for a KV-cache slot is near zero on a healthy engine and minutes when it is"
    " saturated; a log-like spread covers both without many bins.",
)
LEDGER_LATENCY_BUCKETS = BucketFamily(
    "ledger_latency",
    (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0,
     7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0),
    "The hourly ledger roll-up's TTFT and end-to-end bins (one more counts what lies above"
    " the last): every SLO threshold a company sets between 10 ms and 10 min falls on or"
    " near a bound, in few enough bins to keep a year of pod-hours small.",
)
BUCKET_FAMILIES = (TTFT_BUCKETS, ITL_BUCKETS, E2E_BUCKETS, QUEUE_BUCKETS,
                   LEDGER_LATENCY_BUCKETS)


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric. `name` is the exposed name (counters end in `_total`)."""

    name: str
    type: MetricType
    unit: str
    help: str
    labels: tuple[str, ...]
    buckets: BucketFamily | None = None


def _m(name: str, type_: MetricType, unit: str, help_: str, labels: tuple[str, ...],
       buckets: BucketFamily | None = None) -> MetricSpec:
    return MetricSpec(PREFIX + name, type_, unit, help_, labels, buckets)


TIME_TO_FIRST_TOKEN = _m(
    "time_to_first_token_seconds", "histogram", "seconds",
    "Seconds from the request reaching the sidecar to the first generated token.",
    REQUEST_LABELS, TTFT_BUCKETS)
INTER_TOKEN_LATENCY = _m(
    "inter_token_latency_seconds", "histogram", "seconds",
    "Seconds between consecutive streamed token chunks of one request.",
    REQUEST_LABELS, ITL_BUCKETS)
E2E_REQUEST_LATENCY = _m(
    "e2e_request_latency_seconds", "histogram", "seconds",
    "Seconds from the request reaching the sidecar to its response ending, any outcome.",
    (*REQUEST_LABELS, "outcome"), E2E_BUCKETS)
REQUEST_QUEUE_TIME = _m(
    "request_queue_time_seconds", "histogram", "seconds",
    "Seconds a request waited in the engine's queue (known to the in-process plugin, and to"
    " the sidecar where the engine returns per-request metrics).",
    REQUEST_LABELS, QUEUE_BUCKETS)
REQUEST_PREFILL_TIME = _m(
    "request_prefill_time_seconds", "histogram", "seconds",
    "Seconds from the engine scheduling a request to its first token: its prefill (on a P/D"
    " decode engine only its first step; the KV wait is queue time, the remote prefill"
    " happened before). Known to the plugin, and to the sidecar where the engine returns"
    " per-request metrics; TTFT minus queue and prefill is what lies before the engine.",
    REQUEST_LABELS, TTFT_BUCKETS)
REQUESTS = _m(
    "requests_total", "counter", "requests",
    "Inference requests finished, by outcome (ok, error, cancelled, rejected) and HTTP status"
    " code.", (*REQUEST_LABELS, "outcome", "code"))
PROMPT_TOKENS = _m(
    "prompt_tokens_total", "counter", "tokens",
    "Prompt tokens of finished requests, as the engine's usage reported them.",
    REQUEST_LABELS)
GENERATION_TOKENS = _m(
    "generation_tokens_total", "counter", "tokens",
    "Generated tokens of finished requests, as the engine's usage reported them.",
    REQUEST_LABELS)
CACHED_PROMPT_TOKENS = _m(
    "cached_prompt_tokens_total", "counter", "tokens",
    "Prompt tokens served from the engine's prefix cache (when the engine reports them).",
    REQUEST_LABELS)
ENGINE_UP = _m(
    "engine_up", "gauge", "",
    "1 when the last poll of the engine's /metrics succeeded, else 0.",
    ENGINE_LABELS)
ENGINE_KV_CACHE_USAGE = _m(
    "engine_kv_cache_usage_ratio", "gauge", "ratio",
    "Fraction of the engine's KV-cache blocks in use (0-1).",
    ENGINE_LABELS)
ENGINE_REQUESTS_RUNNING = _m(
    "engine_requests_running", "gauge", "requests",
    "Requests the engine is running in its batch now.",
    ENGINE_LABELS)
ENGINE_REQUESTS_WAITING = _m(
    "engine_requests_waiting", "gauge", "requests",
    "Requests waiting in the engine's queue now.",
    ENGINE_LABELS)
ENGINE_PREEMPTIONS = _m(
    "engine_preemptions_total", "counter", "preemptions",
    "Requests the engine preempted because its KV cache was full.",
    ENGINE_LABELS)
ENGINE_PREFIX_CACHE_QUERIES = _m(
    "engine_prefix_cache_queries_tokens_total", "counter", "tokens",
    "Prompt tokens looked up in the engine's prefix cache.",
    ENGINE_LABELS)
ENGINE_PREFIX_CACHE_HITS = _m(
    "engine_prefix_cache_hits_tokens_total", "counter", "tokens",
    "Prompt tokens found in the engine's prefix cache.",
    ENGINE_LABELS)
ENGINE_INFO = _m(
    "engine_info", "gauge", "",
    "1 for each engine: its role in prefill/decode disaggregation (prefill, decode, or empty"
    " when one pod does both) and its kind (vllm, sglang, trtllm, tgi). Join on engine, model.",
    (*ENGINE_LABELS, "role", "engine_kind"))
ENGINE_DP_ENGINES = _m(
    "engine_data_parallel_engines", "gauge", "engines",
    "Data-parallel engines behind this server (vLLM's engine label, SGLang's dp_rank).",
    ENGINE_LABELS)
ENGINE_KV_CACHE_USAGE_MAX = _m(
    "engine_kv_cache_usage_max_ratio", "gauge", "ratio",
    "KV-cache use of the fullest data-parallel engine (0-1); the usage ratio is their mean.",
    ENGINE_LABELS)
ENGINE_REQUESTS_DEFERRED = _m(
    "engine_requests_waiting_deferred", "gauge", "requests",
    "Waiting requests deferred by a transient constraint (a KV transfer, the LoRA budget), not"
    " by capacity: part of engine_requests_waiting.", ENGINE_LABELS)
ENGINE_PROMPT_TOKENS_BY_SOURCE = _m(
    "engine_prompt_tokens_by_source_total", "counter", "tokens",
    "Prompt tokens by where their KV came from: computed here, this engine's prefix cache, or"
    " transferred from another instance (P/D).", (*ENGINE_LABELS, "source"))
ENGINE_KV_TRANSFER_SECONDS = _m(
    "engine_kv_transfer_seconds_total", "counter", "seconds",
    "Seconds spent moving KV cache between prefill and decode (NIXL, SGLang P/D).",
    ENGINE_LABELS)
ENGINE_KV_TRANSFERS = _m(
    "engine_kv_transfers_total", "counter", "transfers",
    "KV-cache transfers between prefill and decode.", ENGINE_LABELS)
ENGINE_KV_TRANSFER_BYTES = _m(
    "engine_kv_transfer_bytes_total", "counter", "bytes",
    "Bytes of KV cache moved between prefill and decode.", ENGINE_LABELS)
ENGINE_KV_TRANSFER_FAILURES = _m(
    "engine_kv_transfer_failures_total", "counter", "transfers",
    "KV-cache transfers that failed (handshake, transfer or notification).", ENGINE_LABELS)
ENGINE_KV_EXPIRED = _m(
    "engine_kv_expired_requests_total", "counter", "requests",
    "Requests whose prefilled KV expired on the prefill side before decode fetched it.",
    ENGINE_LABELS)
SINK_DROPPED = _m(
    "sink_dropped_records_total", "counter", "records",
    "Records a telemetry sink dropped because its bounded queue was full.",
    ("sink",))
SINK_FAILED = _m(
    "sink_failed_records_total", "counter", "records",
    "Records a telemetry sink failed to publish (it raised; the request was not affected).",
    ("sink",))
SINK_WRITE_FAILURES = _m(
    "sink_write_failures_total", "counter", "writes",
    "Batch writes a sink's store refused (down, locked, table gone); the batch is kept and"
    " written again, so nothing is lost unless also counted as dropped.",
    ("sink",))
SINK_QUARANTINED = _m(
    "sink_quarantined_records_total", "counter", "records",
    "Records a sink's store refused for good (a value out of range), kept aside with the"
    " reason (the ledger: table ledger_quarantine); the rest of their batch is written.",
    ("sink",))
JOURNAL_RECORDS = _m(
    "journal_records_total", "counter", "records",
    "Journal lines a consumer handed to its sink (docs/record-contract.md).",
    ("consumer",))
JOURNAL_FAILURES = _m(
    "journal_consumer_failures_total", "counter", "batches",
    "Journal batches a consumer's sink raised on; the batch is read again, nothing dropped.",
    ("consumer",))
JOURNAL_QUARANTINED = _m(
    "journal_quarantined_lines_total", "counter", "lines",
    "Journal lines that broke the record contract (kept in quarantine.jsonl) or whose record"
    " the consumer's store refused (the ledger: table ledger_quarantine), with the reason.",
    ("consumer",))
JOURNAL_LAG = _m(
    "journal_lag_bytes", "gauge", "bytes",
    "How far a consumer is behind the end of the journal.",
    ("consumer",))
TENANT_HEADER_REFUSED = _m(
    "tenant_header_refused_total", "counter", "requests",
    "Requests whose tenant header was not honoured: the sender is not trusted (README,"
    " security), so the API key decided the tenant.", ())
LABEL_OVERFLOW = _m(
    "label_overflow_total", "counter", "requests",
    "Requests whose label value was folded into 'other' to keep series bounded.",
    ("label",))

PLUGIN_RECORD_SECONDS = _m(
    "plugin_record_seconds_total", "counter", "seconds",
    "Seconds the in-process vLLM plugin spent inside record() on vLLM's output loop.",
    ("engine",))
PLUGIN_RECORD_CALLS = _m(
    "plugin_record_calls_total", "counter", "calls",
    "Calls vLLM made to the in-process plugin's record() (about one per engine step).",
    ("engine",))

EVENTS_PENDING = _m(
    "events_pending", "gauge", "events",
    "Product events in the durable outbox waiting for Mixpanel (or kept as local log).", ())
EVENTS_QUARANTINED = _m(
    "events_quarantined", "gauge", "events",
    "Product events Mixpanel rejected, kept with its reason for inspection.", ())
EVENTS_DROPPED = _m(
    "events_dropped_total", "counter", "events",
    "Product events dropped because the bounded outbox was full.", ())
EVENTS_SENT = _m(
    "events_sent_total", "counter", "events",
    "Product events Mixpanel accepted (the outbox deleted them).", ())
EVENTS_SEND_FAILURES = _m(
    "events_send_failures_total", "counter", "batches",
    "Batches sent to Mixpanel without an answer that settles them (timeout, lost answer,"
    " 429, 5xx, refused credentials): their events stay in the outbox and are sent again.",
    ())

# `llmkpi kpi serve`: the KPI report and the cost figures of the latest full period as gauges
KPI_LABELS = ("mapping", "key")
KPI_CEO_VALUE = _m(
    "kpi_ceo_value", "gauge", "",
    "CEO KPI of the mapping for the reported period, in the unit `llmkpi kpi mappings` gives.",
    KPI_LABELS)
KPI_CTO_VALUE = _m(
    "kpi_cto_value", "gauge", "",
    "CTO metric of the mapping for the reported period, in its unit (ratios 0-1).",
    KPI_LABELS)
KPI_BAND = _m(
    "kpi_band", "gauge", "",
    "The CTO metric's band: 0 green, 1 amber, 2 red (absent when it has none).", KPI_LABELS)
KPI_PERIOD = _m(
    "kpi_period_info", "gauge", "",
    "1, labelled with the period the KPI and cost gauges describe.", ("period", "kind"))
REVENUE_PER_EMPLOYEE = _m(
    "north_star_revenue_per_employee_dollars", "gauge", "dollars",
    "The north star: revenue per year per average employee.", ())
ENGINEER_PRODUCTIVITY = _m(
    "engineer_productivity_index_dollars", "gauge", "dollars",
    "Revenue attributable to shipped features per year per average engineer.", ())
COST_PER_MILLION_TOKENS = _m(
    "gpu_cost_per_million_tokens_dollars", "gauge", "dollars",
    "GPU dollars per million tokens by model; token_kind is input, output or blended; basis"
    " fully_loaded is the bill with idle ÷ tokens, busy_time the GPU time requests used ÷"
    " tokens.", ("model", "token_kind", "basis"))
GPU_BILL = _m(
    "gpu_bill_dollars", "gauge", "dollars",
    "The period's GPU bill from the inventory (allocated + idle).", ())
GPU_IDLE_COST = _m(
    "gpu_idle_cost_dollars", "gauge", "dollars",
    "The part of the period's GPU bill no request used.", ())
TENANT_GPU_COST = _m(
    "tenant_gpu_cost_dollars", "gauge", "dollars",
    "GPU dollars of the tenant's requests in the period, fully loaded (their GPU time plus"
    " their share of idle, by cost).", ("tenant",))
FEATURE_GPU_COST = _m(
    "feature_gpu_cost_dollars", "gauge", "dollars",
    "GPU dollars of the feature's requests in the period, fully loaded (their GPU time plus"
    " their share of idle, by cost).", ("feature",))
TENANT_GROSS_MARGIN = _m(
    "tenant_gross_margin_ratio", "gauge", "ratio",
    "(revenue - GPU cost) / revenue of the tenant in the period, where revenue is known; GPU"
    " cost on the KPI config's margin_basis (fully loaded unless set).", ("tenant",))
KPI_REFRESHED = _m(
    "kpi_refresh_timestamp_seconds", "gauge", "seconds",
    "Unix time the KPI gauges were last computed from the store.", ())
KPI_REFRESH_FAILURES = _m(
    "kpi_refresh_failures_total", "counter", "refreshes",
    "Refreshes that failed (the gauges keep their last values).", ())

# a prefill-role sidecar (LLMKPI_ROLE=prefill) sees the requests a decode pod's routing
# sidecar sends for their prefill: counted here, never as clients' requests or tokens
REMOTE_PREFILLS = _m(
    "remote_prefills_total", "counter", "requests",
    "Requests this prefill-role engine prefilled for a decode engine (P/D disaggregation),"
    " by outcome; the client's request is counted once, by the decode pod's sidecar.",
    (*REQUEST_LABELS, "outcome"))
REMOTE_PREFILL_TIME = _m(
    "remote_prefill_seconds", "histogram", "seconds",
    "Seconds a prefill-role engine took for one remote prefill, as its sidecar saw it.",
    REQUEST_LABELS, TTFT_BUCKETS)
REMOTE_PREFILL_TOKENS = _m(
    "remote_prefill_prompt_tokens_total", "counter", "tokens",
    "Prompt tokens this prefill-role engine prefilled for decode engines.", REQUEST_LABELS)
REQUEST_METRICS = (TIME_TO_FIRST_TOKEN, INTER_TOKEN_LATENCY, E2E_REQUEST_LATENCY,
                   REQUEST_QUEUE_TIME, REQUEST_PREFILL_TIME, REQUESTS, PROMPT_TOKENS,
                   GENERATION_TOKENS,
                   CACHED_PROMPT_TOKENS, REMOTE_PREFILLS, REMOTE_PREFILL_TIME,
                   REMOTE_PREFILL_TOKENS)
ENGINE_METRICS = (ENGINE_UP, ENGINE_KV_CACHE_USAGE, ENGINE_REQUESTS_RUNNING,
                  ENGINE_REQUESTS_WAITING, ENGINE_PREEMPTIONS, ENGINE_PREFIX_CACHE_QUERIES,
                  ENGINE_PREFIX_CACHE_HITS, ENGINE_INFO, ENGINE_DP_ENGINES,
                  ENGINE_KV_CACHE_USAGE_MAX, ENGINE_REQUESTS_DEFERRED,
                  ENGINE_PROMPT_TOKENS_BY_SOURCE, ENGINE_KV_TRANSFER_SECONDS,
                  ENGINE_KV_TRANSFERS, ENGINE_KV_TRANSFER_BYTES, ENGINE_KV_TRANSFER_FAILURES,
                  ENGINE_KV_EXPIRED)
HEALTH_METRICS = (SINK_DROPPED, SINK_FAILED, SINK_WRITE_FAILURES, SINK_QUARANTINED,
                  JOURNAL_RECORDS, JOURNAL_FAILURES,
                  JOURNAL_QUARANTINED, JOURNAL_LAG, LABEL_OVERFLOW, TENANT_HEADER_REFUSED,
                  PLUGIN_RECORD_SECONDS,
                  PLUGIN_RECORD_CALLS, EVENTS_PENDING, EVENTS_QUARANTINED, EVENTS_DROPPED,
                  EVENTS_SENT, EVENTS_SEND_FAILURES)
KPI_METRICS = (KPI_CEO_VALUE, KPI_CTO_VALUE, KPI_BAND, KPI_PERIOD, REVENUE_PER_EMPLOYEE,
               ENGINEER_PRODUCTIVITY, COST_PER_MILLION_TOKENS, GPU_BILL, GPU_IDLE_COST,
               TENANT_GPU_COST, FEATURE_GPU_COST, TENANT_GROSS_MARGIN, KPI_REFRESHED,
               KPI_REFRESH_FAILURES)
ALL_METRICS = REQUEST_METRICS + ENGINE_METRICS + HEALTH_METRICS + KPI_METRICS


# Series the generated recording rules write (alerts/); the SLO dashboard reads them.
# Colons mark recorded series, as Prometheus' naming practice asks.
@dataclass(frozen=True)
class RecordedSeries:
    name: str
    help: str
    labels: tuple[str, ...]


SLO_LABELS = ("slo", "model")
SLO_EVENTS = RecordedSeries(
    "llmkpi_slo:events:rate", "Events the SLO counts, per second over `window`.",
    (*SLO_LABELS, "window"))
SLO_BAD_EVENTS = RecordedSeries(
    "llmkpi_slo:bad_events:rate", "Events that missed the SLO, per second over `window`.",
    (*SLO_LABELS, "window"))
SLO_ERROR_RATIO = RecordedSeries(
    "llmkpi_slo:error_ratio", "Bad events / events over `window` (0 when there were none).",
    (*SLO_LABELS, "window"))
SLO_BURN_RATE = RecordedSeries(
    "llmkpi_slo:burn_rate", "Error ratio over `window` / error budget (1 - objective).",
    (*SLO_LABELS, "window"))
SLO_OBJECTIVE = RecordedSeries(
    "llmkpi_slo:objective:ratio", "The SLO's objective (share of good events).", SLO_LABELS)
SLO_BUDGET_REMAINING = RecordedSeries(
    "llmkpi_slo:error_budget_remaining:ratio",
    "Share of the period's error budget not yet spent (negative when overspent).", SLO_LABELS)
TENANT_TOKEN_RATE = RecordedSeries(
    "llmkpi_tenant:tokens:rate1h", "Prompt + generated tokens per second over the last hour.",
    ("tenant",))
RECORDED_SERIES = (SLO_EVENTS, SLO_BAD_EVENTS, SLO_ERROR_RATIO, SLO_BURN_RATE, SLO_OBJECTIVE,
                   SLO_BUDGET_REMAINING, TENANT_TOKEN_RATE)


def le_label(bound: float) -> str:
    """A bucket bound as the `le` label value the Python client writes ("0.5", "10.0")."""
    return repr(float(bound))


def by_name(name: str) -> MetricSpec:
    for spec in ALL_METRICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
