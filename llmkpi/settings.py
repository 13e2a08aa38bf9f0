"""One settings object per component, from CLI flags over documented LLMKPI_* variables.

This is the only module that reads os.environ. Every variable is listed in ENV_DOC.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine_shim.tenancy import TenantTrust
    from exporters.web_config import WebConfig

ENV_DOC = {
    "LLMKPI_UPSTREAM": "sidecar: engine base URL (default http://127.0.0.1:8000)",
    "LLMKPI_HOST": "sidecar/simulator: address to listen on (default 127.0.0.1)",
    "LLMKPI_SIDECAR_PORT": "sidecar: traffic port (default 8080)",
    "LLMKPI_METRICS_PORT": "sidecar: Prometheus /metrics port (default 9464)",
    "LLMKPI_METRICS_HOST": "sidecar/plugin: address /metrics listens on (default: LLMKPI_HOST)",
    "LLMKPI_WEB_CONFIG_FILE": "sidecar/plugin/kpi serve: TLS and basic auth for /metrics, in"
                              " the Prometheus exporters' web config format",
    "LLMKPI_KEY_SALT": "sidecar: salt for hashing API keys into tenant ids (set it in production)",
    "LLMKPI_TENANT_ALIASES": "sidecar: YAML file mapping key hashes to tenant names",
    "LLMKPI_TENANT_HEADER": "sidecar: header naming the tenant (default X-Tenant), honoured"
                            " only from a trusted sender (the next two)",
    "LLMKPI_TRUSTED_NETWORKS": "sidecar: client networks (CIDR, comma-separated) whose tenant"
                               " header is honoured, e.g. the gateway's (none)",
    "LLMKPI_TENANT_HEADER_SECRET": "sidecar: a request carrying this in"
                                   " X-Llmkpi-Tenant-Secret has its tenant header honoured",
    "LLMKPI_FEATURE_HEADER": "sidecar: header naming the product feature (default X-Feature)",
    "LLMKPI_ROLE": "sidecar: the engine's part in P/D disaggregation: prefill, decode (none)",
    "LLMKPI_MAX_BODY_MIB": "sidecar: largest request body relayed; a larger one gets 413 (32)",
    "LLMKPI_MAX_TENANTS": "sidecar: tenants with their own series; the rest are 'other' (20)",
    "LLMKPI_MAX_FEATURES": "sidecar: features with their own series (10)",
    "LLMKPI_RECORDS_OUT": "sidecar: also append every request record to this JSON-lines file",
    "LLMKPI_JOURNAL": "sidecar: folder of the request journal the sinks read"
                      " (docs/record-contract.md)",
    "LLMKPI_JOURNAL_MAX_BYTES": "sidecar: journal segment size before rotation (64 MiB)",
    "LLMKPI_DATA_PLANE": "sidecar: nginx (default where installed: nginx + Lua relays the"
                         " bytes) or python",
    "LLMKPI_PLUGIN_JOURNAL": "vLLM plugin: journal folder (one per vLLM process): the ledger and"
                             " outbox then resume exactly after a kill, as the sidecar's do",
    "LLMKPI_NGINX_WORKERS": "sidecar: nginx worker processes of the nginx data plane (1)",
    "LLMKPI_SINK_QUEUE": "sidecar: bounded queue length per sink (10000)",
    "LLMKPI_ENGINE_POLL_SECONDS": "sidecar: interval of engine /metrics polls, 0 = off (5)",
    "LLMKPI_POD": "sidecar: pod name written into records (default: host name)",
    "LLMKPI_PLUGIN_METRICS_PORT": "vLLM plugin: Prometheus /metrics port, 0 = off (9465)",
    "LLMKPI_PLUGIN_SNAPSHOT_SECONDS": "vLLM plugin: engine snapshot interval (1)",
    "LLMKPI_OTLP_ENDPOINT": "sidecar/plugin: OTLP base URL, e.g. http://collector:4318 (off)",
    "LLMKPI_OTEL_CAPTURE_CONTENT": "sidecar: put prompt and completion text on spans (off)",
    "LLMKPI_OUTBOX": "events: SQLite outbox / local event log; events are on when set",
    "LLMKPI_OUTBOX_MAX_EVENTS": "events: outbox bound; past it new events are dropped, counted",
    "LLMKPI_MIXPANEL_TOKEN": "events: Mixpanel project token; without it nothing is sent",
    "LLMKPI_MIXPANEL_API_SECRET": "events: project API secret for /import (or a service account)",
    "LLMKPI_MIXPANEL_SA_USERNAME": "events: service-account user name for /import",
    "LLMKPI_MIXPANEL_SA_SECRET": "events: service-account secret",
    "LLMKPI_MIXPANEL_PROJECT_ID": "events: project id (needed with a service account)",
    "LLMKPI_MIXPANEL_API_HOST": "events: API base URL (default https://api.mixpanel.com)",
    "LLMKPI_MIXPANEL_TIMEOUT": "events: seconds to wait for an /import answer (10)",
    "LLMKPI_RESPONSE_DELAYED_SECONDS": "events: TTFT above which response_delayed is sent (2)",
    "LLMKPI_DATABASE_URL": "store: a SQLite path or URL, or postgresql://... (llmkpi.sqlite)",
    "LLMKPI_RAW_RETENTION_DAYS": "db retention: whole days of raw ledger rows kept (35); the"
                                 " hourly roll-ups are kept for good",
    "LLMKPI_KPI_CONFIG": "KPI config YAML with bands and targets (none: the defaults)",
    "LLMKPI_LEDGER": "sidecar/plugin: write every request to the store's ledger (off)",
    "LLMKPI_GPU": "sidecar/plugin: GPU type written into ledger rows (empty)",
    "LLMKPI_LOG_LEVEL": "all: logging level (default INFO)",
    "LLMKPI_PROMETHEUS_URL": "app: Prometheus base URL for live serving numbers (none)",
}

# Standard OpenTelemetry variables honoured (the OTLP exporter reads its own OTEL_EXPORTER_*).
OTEL_ENV = ("OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

DEFAULT_SALT = "llmkpi-default-salt"


class Env:
    """Typed reads of LLMKPI_* variables with errors that name the variable."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def get_str(self, name: str, default: str) -> str:
        assert name in ENV_DOC or name in OTEL_ENV, name
        return self.environ.get(name, default)

    def get_bool(self, name: str, default: bool) -> bool:
        raw = self.get_str(name, str(default)).strip().lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"environment variable {name}={raw!r} must be true or false")

    def get_int(self, name: str, default: int, minimum: int = 0) -> int:
        raw = self.get_str(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None
        if value < minimum:
            raise ValueError(f"environment variable {name}={value} must be >= {minimum}")
        return value

    def get_float(self, name: str, default: float) -> float:
        raw = self.get_str(name, str(default))
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"environment variable {name}={raw!r} is not a number") from None


@dataclass(frozen=True)
class TracingSettings:
    """Where spans go. On when an OTLP endpoint is configured (ours or OTEL_*'s)."""

    enabled: bool
    endpoint: str | None
    protocol: str
    service_name: str
    sample_ratio: float
    capture_content: bool

    @classmethod
    def from_env(cls, env: Env, service_name: str, endpoint_flag: str | None = None,
                 ratio_flag: float | None = None) -> TracingSettings:
        endpoint = endpoint_flag or env.get_str("LLMKPI_OTLP_ENDPOINT", "") or None
        otel_endpoint = (env.get_str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
                         or env.get_str("OTEL_EXPORTER_OTLP_ENDPOINT", ""))
        disabled = env.get_bool("OTEL_SDK_DISABLED", False)
        sampler = env.get_str("OTEL_TRACES_SAMPLER", "parentbased_always_on").lower()
        ratio = 1.0
        if sampler in ("always_off", "parentbased_always_off"):
            ratio = 0.0
        elif sampler in ("traceidratio", "parentbased_traceidratio"):
            ratio = env.get_float("OTEL_TRACES_SAMPLER_ARG", 1.0)
        if ratio_flag is not None:
            ratio = ratio_flag
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"trace sample ratio {ratio} must be between 0 and 1")
        protocol = (env.get_str("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
                    or env.get_str("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"))
        return cls(enabled=bool(endpoint or otel_endpoint) and not disabled, endpoint=endpoint,
                   protocol=protocol,
                   service_name=env.get_str("OTEL_SERVICE_NAME", service_name),
                   sample_ratio=ratio,
                   capture_content=env.get_bool("LLMKPI_OTEL_CAPTURE_CONTENT", False))


@dataclass(frozen=True)
class EventsSettings:
    """Product events: the durable outbox, and Mixpanel when a token is configured."""

    outbox: Path | None
    max_events: int
    token: str | None
    api_host: str
    api_secret: str | None
    sa_username: str | None
    sa_secret: str | None
    project_id: str | None
    timeout: float
    delayed_after: float

    @property
    def enabled(self) -> bool:
        return self.outbox is not None

    @property
    def sends(self) -> bool:
        return self.enabled and bool(self.token)

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Env | None = None) -> EventsSettings:
        """`llmkpi events` flags (--outbox, --api-host) over LLMKPI_* variables."""
        return cls.from_env(env, getattr(args, "outbox", None), getattr(args, "api_host", None))

    @classmethod
    def from_env(cls, env: Env | None = None, outbox_flag: str | None = None,
                 api_host_flag: str | None = None) -> EventsSettings:
        env = env or Env()
        outbox = outbox_flag or env.get_str("LLMKPI_OUTBOX", "")
        settings = cls(
            outbox=Path(outbox) if outbox else None,
            max_events=env.get_int("LLMKPI_OUTBOX_MAX_EVENTS", 1_000_000, 1),
            token=env.get_str("LLMKPI_MIXPANEL_TOKEN", "") or None,
            api_host=api_host_flag or env.get_str("LLMKPI_MIXPANEL_API_HOST",
                                                  "https://api.mixpanel.com"),
            api_secret=env.get_str("LLMKPI_MIXPANEL_API_SECRET", "") or None,
            sa_username=env.get_str("LLMKPI_MIXPANEL_SA_USERNAME", "") or None,
            sa_secret=env.get_str("LLMKPI_MIXPANEL_SA_SECRET", "") or None,
            project_id=env.get_str("LLMKPI_MIXPANEL_PROJECT_ID", "") or None,
            timeout=env.get_float("LLMKPI_MIXPANEL_TIMEOUT", 10.0),
            delayed_after=env.get_float("LLMKPI_RESPONSE_DELAYED_SECONDS", 2.0),
        )
        if settings.token and not (settings.api_secret or settings.sa_secret):
            raise ValueError("LLMKPI_MIXPANEL_TOKEN is set but /import needs credentials: set"
                             " LLMKPI_MIXPANEL_API_SECRET or a service account"
                             " (LLMKPI_MIXPANEL_SA_USERNAME, _SA_SECRET, _PROJECT_ID)")
        if settings.sa_username and not settings.project_id:
            raise ValueError("LLMKPI_MIXPANEL_SA_USERNAME needs LLMKPI_MIXPANEL_PROJECT_ID")
        return settings


@dataclass(frozen=True)
class SinkSettings:
    """Where measurements go; the same for the sidecar and the in-process plugin."""

    records_out: Path | None
    sink_queue: int
    pod: str
    gpu: str
    ledger_url: str | None
    tracing: TracingSettings
    events: EventsSettings

    @classmethod
    def from_env(cls, env: Env, service_name: str,
                 flags: Mapping[str, object] | None = None) -> SinkSettings:
        flags = flags or {}
        records = _opt_str(flags.get("records_out")) or env.get_str("LLMKPI_RECORDS_OUT", "")
        ledger = bool(flags.get("ledger")) or env.get_bool("LLMKPI_LEDGER", False)
        return cls(
            records_out=Path(records) if records else None,
            sink_queue=env.get_int("LLMKPI_SINK_QUEUE", 10_000, 1),
            pod=env.get_str("LLMKPI_POD", socket.gethostname()),
            gpu=env.get_str("LLMKPI_GPU", ""),
            ledger_url=database_url(env=env) if ledger else None,
            tracing=TracingSettings.from_env(
                env, service_name, endpoint_flag=_opt_str(flags.get("otlp_endpoint")),
                ratio_flag=_opt_float(flags.get("trace_sample_ratio"))),
            events=EventsSettings.from_env(env, outbox_flag=_opt_str(flags.get("outbox"))),
        )


DATA_PLANES = ("python", "nginx")


ROLES = ("", "prefill", "decode")


def pod_role(env: Env) -> str:
    """LLMKPI_ROLE, checked: the engine's part in P/D disaggregation (sidecar and plugin)."""
    role = env.get_str("LLMKPI_ROLE", "")
    if role not in ROLES:
        raise ValueError(f"LLMKPI_ROLE {role!r} must be one of prefill, decode,"
                         " or empty (one pod does both)")
    return role


@dataclass(frozen=True)
class SidecarSettings:
    upstream: str
    host: str
    port: int
    metrics_port: int
    key_salt: str
    tenant_aliases: Path | None
    tenant_header: str
    feature_header: str
    max_tenants: int
    max_features: int
    engine_poll_seconds: float
    sinks: SinkSettings
    journal: Path | None = None  # the data plane's hand-off to the sinks (docs/record-contract.md)
    journal_max_bytes: int = 64 * 1024 * 1024
    data_plane: str = "nginx"  # where installed, else python: engine_shim/nginx_plane.py
    nginx_workers: int = 1
    trusted_networks: str = ""  # whose tenant header is honoured (engine_shim/tenancy.py)
    tenant_header_secret: str = ""
    metrics_host: str = "127.0.0.1"
    web_config: WebConfig | None = None  # TLS / basic auth of /metrics
    max_body_mib: int = 32  # a larger request body is answered 413 (and counted)
    role: str = ""  # prefill | decode: the engine's part in P/D (llm-d.ai/role), "" for both

    def trust(self) -> TenantTrust:
        from engine_shim.tenancy import TenantTrust

        try:
            return TenantTrust.parse(self.trusted_networks, self.tenant_header_secret)
        except ValueError as exc:
            raise ValueError(f"LLMKPI_TRUSTED_NETWORKS: {exc}") from None

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Env | None = None) -> SidecarSettings:
        """`llmkpi sidecar` flags over LLMKPI_* variables over the defaults."""
        return cls.from_flags(vars(args), env)

    @classmethod
    def from_flags(cls, flags: Mapping[str, object], env: Env | None = None) -> SidecarSettings:
        env = env or Env()

        def pick(key: str, fallback: object) -> object:
            value = flags.get(key)
            return fallback if value is None else value

        aliases = pick("tenant_aliases", env.get_str("LLMKPI_TENANT_ALIASES", "")) or None
        journal = pick("journal", env.get_str("LLMKPI_JOURNAL", "")) or None
        settings = cls(
            upstream=str(pick("upstream", env.get_str("LLMKPI_UPSTREAM", "http://127.0.0.1:8000"))),
            host=str(pick("host", env.get_str("LLMKPI_HOST", "127.0.0.1"))),
            port=int(str(pick("port", env.get_int("LLMKPI_SIDECAR_PORT", 8080)))),
            metrics_port=int(str(pick("metrics_port", env.get_int("LLMKPI_METRICS_PORT", 9464)))),
            key_salt=env.get_str("LLMKPI_KEY_SALT", DEFAULT_SALT),
            tenant_aliases=Path(str(aliases)) if aliases else None,
            tenant_header=env.get_str("LLMKPI_TENANT_HEADER", "X-Tenant"),
            feature_header=env.get_str("LLMKPI_FEATURE_HEADER", "X-Feature"),
            max_tenants=int(str(pick("max_tenants", env.get_int("LLMKPI_MAX_TENANTS", 20, 1)))),
            max_features=env.get_int("LLMKPI_MAX_FEATURES", 10, 1),
            engine_poll_seconds=float(str(pick(
                "engine_poll_seconds", env.get_float("LLMKPI_ENGINE_POLL_SECONDS", 5.0)))),
            sinks=SinkSettings.from_env(env, "llmkpi-sidecar", flags),
            journal=Path(str(journal)) if journal else None,
            journal_max_bytes=env.get_int("LLMKPI_JOURNAL_MAX_BYTES", 64 * 1024 * 1024, 4096),
            data_plane=str(pick("data_plane", env.get_str("LLMKPI_DATA_PLANE", "nginx"))),
            nginx_workers=env.get_int("LLMKPI_NGINX_WORKERS", 1, 1),
            trusted_networks=env.get_str("LLMKPI_TRUSTED_NETWORKS", ""),
            tenant_header_secret=env.get_str("LLMKPI_TENANT_HEADER_SECRET", ""),
            metrics_host=str(pick("metrics_host", env.get_str(
                "LLMKPI_METRICS_HOST", str(pick("host", env.get_str("LLMKPI_HOST",
                                                                      "127.0.0.1")))))),
            web_config=web_config(_opt_str(flags.get("web_config_file")), env),
            max_body_mib=int(str(pick("max_body_mib", env.get_int("LLMKPI_MAX_BODY_MIB", 32,
                                                                   1)))),
            role=pod_role(env),
        )
        settings.trust()  # a bad network fails here, naming it
        if settings.data_plane not in DATA_PLANES:
            raise ValueError(f"--data-plane {settings.data_plane!r} must be one of"
                             f" {', '.join(DATA_PLANES)}")
        if not settings.upstream.startswith(("http://", "https://")):
            raise ValueError(f"--upstream {settings.upstream!r} must start with http:// or https://")
        if settings.port == settings.metrics_port and settings.port != 0:
            raise ValueError("--port and --metrics-port must differ: metrics are served apart"
                             " from traffic")
        return settings


@dataclass(frozen=True)
class PluginSettings:
    """The in-process vLLM plugin has no command line of its own: environment only."""

    host: str
    metrics_port: int
    snapshot_seconds: float
    sinks: SinkSettings
    journal: Path | None = None  # one folder per vLLM process (docs/record-contract.md)
    web_config: WebConfig | None = None
    role: str = ""  # LLMKPI_ROLE: prefill, decode, "" for both

    @classmethod
    def from_env(cls, env: Env | None = None) -> PluginSettings:
        env = env or Env()
        journal = env.get_str("LLMKPI_PLUGIN_JOURNAL", "")
        return cls(
            host=env.get_str("LLMKPI_METRICS_HOST", env.get_str("LLMKPI_HOST", "127.0.0.1")),
            metrics_port=env.get_int("LLMKPI_PLUGIN_METRICS_PORT", 9465),
            snapshot_seconds=env.get_float("LLMKPI_PLUGIN_SNAPSHOT_SECONDS", 1.0),
            sinks=SinkSettings.from_env(env, "llmkpi-vllm-plugin"),
            journal=Path(journal) if journal else None,
            web_config=web_config(None, env),
            role=pod_role(env),
        )


def web_config(flag: str | None, env: Env | None = None) -> WebConfig | None:
    """The /metrics web config (--web-config-file over LLMKPI_WEB_CONFIG_FILE), read and
    checked now, before any port opens; None when none is given."""
    path = flag or (env or Env()).get_str("LLMKPI_WEB_CONFIG_FILE", "")
    if not path:
        return None
    from exporters.web_config import load_web_config

    return load_web_config(Path(path))


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _opt_float(value: object) -> float | None:
    return None if value is None else float(str(value))


def key_salt(env: Env | None = None) -> str:
    """The salt API keys are hashed with (LLMKPI_KEY_SALT)."""
    return (env or Env()).get_str("LLMKPI_KEY_SALT", DEFAULT_SALT)


def child_environment(extra: Mapping[str, str] | None = None,
                      env: Env | None = None) -> dict[str, str]:
    """This process's environment for a child process, with `extra` over it."""
    return {**(env or Env()).environ, **(extra or {})}


def database_url(flag: str | None = None, env: Env | None = None) -> str:
    return flag or (env or Env()).get_str("LLMKPI_DATABASE_URL", "llmkpi.sqlite")


def raw_retention_days(flag: int | None = None, env: Env | None = None) -> int:
    """Days of raw ledger rows `llmkpi db retention` keeps (a month and its first days)."""
    return flag if flag is not None else (env or Env()).get_int(
        "LLMKPI_RAW_RETENTION_DAYS", 35, 1)


def log_level(env: Env | None = None) -> str:
    return (env or Env()).get_str("LLMKPI_LOG_LEVEL", "INFO").upper()


def has_display() -> bool:
    """Whether a browser window can open here (a desktop session, or macOS); the demo opens
    the page only then, so a server or CI never gets a console browser."""
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY")
                                            or os.environ.get("WAYLAND_DISPLAY"))


def prometheus_url(flag: str | None = None, env: Env | None = None) -> str | None:
    """The Prometheus the executive view reads live numbers from: --prometheus-url, else
    LLMKPI_PROMETHEUS_URL, else none (the page then shows the ledger's numbers only)."""
    return flag or (env or Env()).get_str("LLMKPI_PROMETHEUS_URL", "") or None


def kpi_config_path(flag: str | None = None, env: Env | None = None) -> Path | None:
    """The KPI config file (bands, targets): --config, else LLMKPI_KPI_CONFIG, else none."""
    value = flag or (env or Env()).get_str("LLMKPI_KPI_CONFIG", "")
    return Path(value) if value else None
