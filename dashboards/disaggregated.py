"""Disaggregated serving: where a request's time goes across prefill, the KV transfer and
decode, per tenant and role; the transfer's speed and failures; waiting by reason; where
prompt tokens came from; and the gateway's picture of the pool (docs/kpis.md, "Serving
across roles")."""

from __future__ import annotations

from grafanalib import core as g

from dashboards import panels as p
from dashboards import promql as q
from specs import catalog as c
from specs.gateway import either

UID = "llmkpi-disaggregated"
VARS = ("model", "tenant", "pod")
ENGINE_VARS = ("model", "pod")
RATE = q.RATE
BY_ROLE = f"* on (engine, model) group_left (role) {c.ENGINE_INFO.name}"


def _mean(spec: c.MetricSpec, by: tuple[str, ...] = ("tenant",)) -> str:
    """The mean of a histogram's observations over the window: rate of sum / rate of count."""
    return q.ratio(q.rate_sum(spec, VARS, by, suffix="_sum"),
                   q.rate_sum(spec, VARS, by, suffix="_count"))


def _per_role(spec: c.MetricSpec, rate: bool = False) -> str:
    inner = (f"rate({q.series(spec, ENGINE_VARS)}[{RATE}])" if rate
             else q.series(spec, ENGINE_VARS))
    return f"sum by (role) ({inner} {BY_ROLE})"


def _rate(spec: c.MetricSpec) -> str:
    return q.rate_sum(spec, ENGINE_VARS)


def build() -> g.Dashboard:
    lay = p.Layout()
    lay.add(p.row("Where time to first token goes"))
    lay.add(p.timeseries("TTFT decomposition by tenant (mean)", [
        p.Query(_mean(c.REQUEST_QUEUE_TIME), "{{tenant}} engine queue (with the KV wait)"),
        p.Query(_mean(c.REQUEST_PREFILL_TIME), "{{tenant}} engine prefill"),
        p.Query(f"({_mean(c.TIME_TO_FIRST_TOKEN)}) - on (tenant)"
                f" ({_mean(c.REQUEST_QUEUE_TIME)}) - on (tenant)"
                f" ({_mean(c.REQUEST_PREFILL_TIME)})",
                "{{tenant}} before the engine")], "s",
        "Mean TTFT split into the serving engine's queue wait (on a P/D decode engine it holds"
        " the wait for the KV transfer), its scheduling-to-first-token time (its prefill; on a"
        " decode engine one step) and what lies before the engine: network, gateway, sidecar"
        " and, with P/D, the remote prefill. Needs the engine's per-request metrics (vLLM"
        " --enable-per-request-metrics).", stacked=True), w=24)
    lay.add(p.timeseries("Mean TTFT by tenant", [p.Query(_mean(c.TIME_TO_FIRST_TOKEN),
                                                          "{{tenant}}")], "s",
                         c.TIME_TO_FIRST_TOKEN.help))
    lay.add(p.timeseries("Waiting requests by role", [p.Query(
        f"sum by (role) ({c.ENGINE_REQUESTS_WAITING.name} {BY_ROLE})", "{{role}} waiting"),
        p.Query(f"sum by (role) ({c.ENGINE_REQUESTS_DEFERRED.name} {BY_ROLE})",
                "{{role}} deferred (KV transfer)")], "short",
        f"{c.ENGINE_REQUESTS_WAITING.help} Deferred: {c.ENGINE_REQUESTS_DEFERRED.help}"))

    lay.add(p.row("KV-cache transfer"))
    lay.add(p.timeseries("Transfer time per transfer", [p.Query(q.ratio(
        _rate(c.ENGINE_KV_TRANSFER_SECONDS), _rate(c.ENGINE_KV_TRANSFERS)), "mean")], "s",
        c.ENGINE_KV_TRANSFER_SECONDS.help))
    lay.add(p.timeseries("Transfer throughput", [p.Query(q.ratio(
        _rate(c.ENGINE_KV_TRANSFER_BYTES), _rate(c.ENGINE_KV_TRANSFER_SECONDS)), "bytes / s")],
        "Bps", "Bytes moved per second of transfer time."))
    lay.add(p.timeseries("Transfers and failures / s", [
        p.Query(_rate(c.ENGINE_KV_TRANSFERS), "transfers"),
        p.Query(_rate(c.ENGINE_KV_TRANSFER_FAILURES), "failed")], "short",
        c.ENGINE_KV_TRANSFER_FAILURES.help))
    lay.add(p.timeseries("Expired KV leases / s", [p.Query(
        _rate(c.ENGINE_KV_EXPIRED), "expired")], "short", c.ENGINE_KV_EXPIRED.help))

    lay.add(p.row("Engines by role"))
    lay.add(p.timeseries("KV-cache usage by role (mean, fullest engine)", [
        p.Query(f"avg by (role) ({c.ENGINE_KV_CACHE_USAGE.name} {BY_ROLE})", "{{role}} mean"),
        p.Query(f"max by (role) ({c.ENGINE_KV_CACHE_USAGE_MAX.name} {BY_ROLE})",
                "{{role}} fullest")], "percentunit", c.ENGINE_KV_CACHE_USAGE_MAX.help,
        max_value=1))
    lay.add(p.timeseries("Prompt tokens / s by source", [p.Query(
        q.rate_sum(c.ENGINE_PROMPT_TOKENS_BY_SOURCE, ENGINE_VARS, by=("source",)),
        "{{source}}")], "short", c.ENGINE_PROMPT_TOKENS_BY_SOURCE.help, stacked=True))

    lay.add(p.row("Gateway (endpoint picker)"))
    lay.add(p.timeseries("Routing decisions / s", [p.Query(
        f"sum by (decision_type) {either('disagg_decisions', f'rate({{}}[{RATE}])')}",
        "{{decision_type}}")], "short", "The endpoint picker's P/D decision per request:"
        " decode-only, prefill-decode, aggregated-fallback, encode-...", stacked=True))
    lay.add(p.timeseries("Pool saturation by stage", [p.Query(
        f"max by (stage) {either('pool_saturation')}", "{{stage}}")], "short",
        "1.0 is the set point at which the gateway stops dispatching; above it the stage is"
        " oversubscribed.", thresholds=[{"color": "green", "value": None},
                                         {"color": "red", "value": 1}]))
    lay.add(p.timeseries("Pool KV-cache and queue (mean over endpoints)", [
        p.Query(f"max {either('pool_kv_cache')}", "KV cache"),
        p.Query(f"max {either('pool_queue')}", "queue")], "short",
        "The gateway's averages over the pool's endpoints."))
    lay.add(p.stat("Ready endpoints", [p.Query(f"sum {either('ready_endpoints')}",
                                              "ready")], "none", graph=False), w=12, h=4)

    variables = p.serving_variables()
    return p.dashboard(UID, "llmkpi · Disaggregated serving", "Prefill, KV transfer and"
                       " decode across pods: TTFT decomposition per tenant, transfer time"
                       " and failures, expired leases, waiting by reason, prompt-token"
                       " sources and the gateway's pool.", ["serving", "disaggregated"], lay,
                       variables)
