"""The store's tables: every input the 19 KPI mappings and cost per token need.

Times are timezone-aware UTC; money is in dollars (float, rounded by the KPI layer when shown).
Natural keys are primary keys wherever a source has one, so re-importing merges instead of
duplicating.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, FetchedValue, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utc_column(nullable: bool = False, primary_key: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), nullable=nullable, primary_key=primary_key)


class LedgerRow(SQLModel, table=True):
    """One inference request, from a RequestRecord (sidecar or plugin)."""

    __tablename__ = "ledger"
    # (pod, arrival): the roll-up and cost allocation read one pod's time window at a time;
    # (arrival): the page's "as of" is the newest request
    __table_args__ = (UniqueConstraint("source", "request_id"),
                      Index("ix_ledger_pod_arrival", "pod", "arrival"),
                      Index("ix_ledger_arrival", "arrival"))
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16)
    request_id: str = Field(max_length=128)  # the data plane's own id: the key
    # what the client sent as X-Request-Id (its own correlation id; never a key)
    client_request_id: str | None = Field(default=None, max_length=128, index=True)
    tenant: str = Field(max_length=64, index=True)
    model: str = Field(max_length=256, index=True)
    feature: str = Field(max_length=64)
    endpoint: str = Field(max_length=64)
    pod: str = Field(default="", max_length=128)
    gpu: str = Field(default="", max_length=64)
    arrival: datetime = Field(sa_column=utc_column())
    finish: datetime = Field(sa_column=utc_column())
    outcome: str = Field(max_length=16)
    http_status: int
    time_to_first_token: float | None = None
    e2e_latency: float
    mean_inter_token_latency: float | None = None
    queue_time: float | None = None
    prefill_time: float | None = None
    decode_time: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    finish_reason: str | None = Field(default=None, max_length=32)
    trace_id: str | None = Field(default=None, max_length=32)
    # the request's token gaps counted in the ITL histogram's bins (sparse JSON,
    # collectors/usage.py): what a per-gap p95 and the ITL SLO need
    itl_counts: str | None = None
    # a text value was longer than its column and was cut (collectors/ledger.fit_row)
    truncated: bool = False
    # the engine's part in P/D disaggregation (RequestRecord.role): "prefill" rows are the
    # prefill pod's work for requests another row records (collectors/usage.py)
    role: str = Field(default="", max_length=16)


# The id of the transaction that wrote a row (PostgreSQL: pg_current_xact_id(), the
# column's default; SQLite: NULL, unused): the roll-up's watermark under concurrent writers
# (collectors/rollup.Cursor). On the table only, not the model: an insert never sets it.
LedgerRow.__table__.append_column(  # type: ignore[attr-defined]
    Column("txid", BigInteger, nullable=True, server_default=FetchedValue(), index=True))


class LedgerQuarantine(SQLModel, table=True):
    """A request row the store refused even after fitting (a count out of the column's
    range, ...): kept whole as JSON with the store's reason, in the transaction that wrote
    the rest of its batch, so nothing is lost and nothing blocks the ledger."""

    __tablename__ = "ledger_quarantine"
    id: int | None = Field(default=None, primary_key=True)
    consumer: str = Field(max_length=200)
    request_id: str = Field(max_length=128)
    reason: str = Field(max_length=500)
    row: str
    quarantined: datetime = Field(sa_column=utc_column())


class EngineSnapshotRow(SQLModel, table=True):
    """One reading of an engine's gauges and counters (sidecar poll, plugin, or Prometheus)."""

    __tablename__ = "engine_snapshot"
    __table_args__ = (UniqueConstraint("engine", "model", "pod", "taken",
                                       name="uq_engine_snapshot_reading"),)
    id: int | None = Field(default=None, primary_key=True)
    taken: datetime = Field(sa_column=utc_column())
    engine: str = Field(max_length=256)
    model: str = Field(max_length=256)
    pod: str = Field(default="", max_length=128)
    up: bool
    kv_cache_usage: float | None = None
    requests_running: float | None = None
    requests_waiting: float | None = None
    preemptions_total: float | None = None
    prefix_cache_queries_total: float | None = None
    prefix_cache_hits_total: float | None = None


class GpuAllocation(SQLModel, table=True):
    """GPUs provisioned for a pod over a period, and their price."""

    __tablename__ = "gpu_inventory"
    pod: str = Field(primary_key=True, max_length=128)
    valid_from: datetime = Field(sa_column=utc_column(primary_key=True))
    valid_to: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    gpu_type: str = Field(max_length=64)
    gpu_count: int
    dollars_per_gpu_hour: float


class Deployment(SQLModel, table=True):
    __tablename__ = "deployment"
    id: str = Field(primary_key=True, max_length=128)
    service: str = Field(max_length=128)
    environment: str = Field(max_length=32)
    result: str = Field(max_length=16)
    started: datetime = Field(sa_column=utc_column())
    finished: datetime = Field(sa_column=utc_column())
    commit_shas: str = Field(default="", description="space-separated SHAs deployed")


class Commit(SQLModel, table=True):
    __tablename__ = "commit"
    sha: str = Field(primary_key=True, max_length=64)
    repository: str = Field(max_length=256)
    author: str = Field(max_length=256)
    authored: datetime = Field(sa_column=utc_column())
    committed: datetime = Field(sa_column=utc_column())
    subject: str = Field(default="")


class Incident(SQLModel, table=True):
    __tablename__ = "incident"
    id: str = Field(primary_key=True, max_length=128)
    title: str = Field(default="")
    service: str = Field(max_length=128)
    severity: str = Field(max_length=16)
    category: str = Field(default="availability", max_length=32)
    detected: datetime = Field(sa_column=utc_column())
    acknowledged: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    contained: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    resolved: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    deployment_id: str | None = Field(default=None, max_length=128)


class WorkItem(SQLModel, table=True):
    __tablename__ = "work_item"
    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=16)  # defect, debt, idea, feature, story, task
    status: str = Field(max_length=32)
    created: datetime = Field(sa_column=utc_column())
    resolved: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    points: float | None = None
    release: str | None = Field(default=None, max_length=64)
    hours_spent: float | None = None
    labels: str = Field(default="")
    status_history: str = Field(default="[]", description="JSON list of [status, iso time]")


class Release(SQLModel, table=True):
    __tablename__ = "release"
    name: str = Field(primary_key=True, max_length=64)
    target: date
    released: date | None = None


class Person(SQLModel, table=True):
    """One stint of employment: a person who leaves and comes back has two rows."""

    __tablename__ = "person"
    person: str = Field(primary_key=True, max_length=128)
    hired: date = Field(primary_key=True)
    team: str = Field(max_length=64)
    tech: bool
    exited: date | None = None
    hourly_rate: float | None = None


class FinanceMonth(SQLModel, table=True):
    __tablename__ = "finance_month"
    month: date = Field(primary_key=True)  # first day of the month
    revenue: float
    cogs: float
    operating_expenses: float
    sales_marketing: float
    research_development: float
    net_income: float
    operating_cash_flow: float
    cash: float
    receivables: float
    mrr_start: float
    mrr_new: float
    mrr_expansion: float
    mrr_contraction: float
    mrr_churned: float
    customers_start: int
    customers_new: int
    customers_lost: int
    accounts: int
    ebitda: float | None = None  # optional: KPI 18; blank when finance does not report it
    sales_cycle_days: float | None = None  # optional: KPI 13, mean close - first contact


class TenantRevenue(SQLModel, table=True):
    __tablename__ = "tenant_revenue"
    month: date = Field(primary_key=True)
    tenant: str = Field(primary_key=True, max_length=64)
    revenue: float


class ProductEventRow(SQLModel, table=True):
    __tablename__ = "product_event"
    insert_id: str = Field(primary_key=True, max_length=64)
    event: str = Field(max_length=64, index=True)
    distinct_id: str = Field(max_length=256)
    happened: datetime = Field(sa_column=utc_column())
    properties: str = Field(default="{}", description="JSON object")
    source: str = Field(default="mixpanel", max_length=16)


class CoverageReport(SQLModel, table=True):
    __tablename__ = "coverage_report"
    source: str = Field(primary_key=True, max_length=256)
    taken: datetime = Field(sa_column=utc_column(primary_key=True))
    lines_valid: int
    lines_covered: int
    branches_valid: int | None = None
    branches_covered: int | None = None


class TestRun(SQLModel, table=True):
    __tablename__ = "test_run"
    __test__ = False  # not a pytest class
    suite: str = Field(primary_key=True, max_length=256)
    taken: datetime = Field(sa_column=utc_column(primary_key=True))
    tests: int
    failures: int
    errors: int
    skipped: int
    seconds: float


class IntegrationAttempt(SQLModel, table=True):
    __tablename__ = "integration_attempt"
    id: str = Field(primary_key=True, max_length=128)
    integration: str = Field(max_length=128)
    tenant: str = Field(max_length=64)
    attempted: datetime = Field(sa_column=utc_column())
    success: bool


class LedgerHour(SQLModel, table=True):
    """The ledger summed per pod and hour (collectors/rollup.py): what the KPI layer reads
    for a year of requests without scanning millions of rows. Latencies are counted in the
    fixed bins of usage.LATENCY_BOUNDS (sparse JSON, collectors/usage.py; one more bin
    counts what lies above the last bound)."""

    __tablename__ = "ledger_hour"
    pod: str = Field(primary_key=True, max_length=128)
    hour: datetime = Field(sa_column=utc_column(primary_key=True))
    requests: int
    ok: int
    failed: int  # server-side failures: outcome error (engine_shim.records.is_server_failure)
    throttled: int = 0  # answered 429 (counted as failures only where configured)
    cancelled: int = 0  # given up by the client: neither good nor bad for availability
    input_tokens: int
    output_tokens: int
    busy_seconds: float
    ttft_counts: str
    e2e_counts: str
    prefills: int = 0  # requests prefilled for a decode engine (not counted in requests)
    role: str = Field(default="", max_length=16)  # of the requests arriving in the hour


class LedgerUsage(SQLModel, table=True):
    """The ledger summed per pod, hour, tenant, feature and model (collectors/usage.py):
    what cost allocation, serving health and the SLOs read, so they answer the same for a
    period whose raw rows have aged out. Work is in integer microseconds; TTFT and ITL gaps
    are counted in the live histograms' bins (sparse JSON)."""

    __tablename__ = "ledger_usage"
    # every reader takes a time window of every pod: the key starts with the pod
    __table_args__ = (Index("ix_ledger_usage_hour", "hour"),)
    pod: str = Field(primary_key=True, max_length=128)
    hour: datetime = Field(sa_column=utc_column(primary_key=True))
    tenant: str = Field(primary_key=True, max_length=64)
    feature: str = Field(primary_key=True, max_length=64)
    model: str = Field(primary_key=True, max_length=256)
    requests: int
    ok: int
    failed: int
    throttled: int
    cancelled: int
    input_tokens: int = Field(sa_type=BigInteger)
    cached_tokens: int = Field(sa_type=BigInteger)
    output_tokens: int = Field(sa_type=BigInteger)
    prefill_us: int = Field(sa_type=BigInteger)  # charged prefill work (cache hits excluded)
    decode_us: int = Field(sa_type=BigInteger)
    ttft_counts: str  # over specs.catalog.TTFT_BUCKETS
    itl_counts: str  # every token gap, over specs.catalog.ITL_BUCKETS
    prefills: int = 0  # requests prefilled here for a decode engine (role prefill)
    prefill_tokens: int = Field(default=0, sa_type=BigInteger)  # their prompt tokens
    queue_us: int = Field(default=0, sa_type=BigInteger)  # clients' requests' engine queue


class KpiPeriodCache(SQLModel, table=True):
    """A closed period's 19 KPI pairs as computed (kpi_mapping/period_cache.py), with what
    they were computed from: the newest import and the requests rolled up in the period.
    Either changing makes the entry stale."""

    __tablename__ = "kpi_period_cache"
    kind: str = Field(primary_key=True, max_length=16)
    start: datetime = Field(sa_column=utc_column(primary_key=True))
    key: str = Field(primary_key=True, max_length=64)  # the KPI config and formulas' code
    computed: datetime = Field(sa_column=utc_column())
    import_id: int = Field(sa_type=BigInteger)
    requests: int = Field(sa_type=BigInteger)
    pairs: str  # JSON: {mapping id: [CEO value, CTO value]}


class RollupState(SQLModel, table=True):
    """How far a derived table has read its source: the highest ledger id rolled up
    (SQLite), or the transaction horizon below which every row is rolled up (PostgreSQL;
    collectors/rollup.Cursor)."""

    __tablename__ = "rollup_state"
    name: str = Field(primary_key=True, max_length=64)
    last_id: int = Field(sa_type=BigInteger)


class ImportLog(SQLModel, table=True):
    """Every import: which file (by content hash), how many rows, when."""

    __tablename__ = "import_log"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    path: str
    sha256: str = Field(max_length=64)
    rows: int
    imported: datetime = Field(sa_column=utc_column())


class JournalOffset(SQLModel, table=True):
    """Where a durable journal consumer is (engine_shim/journal.py): committed in the same
    transaction as the ledger rows derived from the lines before it, so a telemetry process
    killed at any instant resumes exactly there. One row per journal (its id) and consumer."""

    __tablename__ = "journal_offset"
    consumer: str = Field(primary_key=True, max_length=200)
    segment: int = Field(sa_type=BigInteger)
    offset: int = Field(sa_type=BigInteger)
    updated: datetime = Field(sa_column=utc_column())
