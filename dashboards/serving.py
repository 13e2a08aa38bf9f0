"""Serving: how fast and how full the fleet is, token by token, per model, tenant and pod."""

from __future__ import annotations

from grafanalib import core as g

from dashboards import panels as p
from dashboards import promql as q
from specs import catalog as c

UID = "llmkpi-serving"
VARS = ("model", "tenant", "pod")
QUANTILES = (0.5, 0.95, 0.99)


def _quantiles(spec: c.MetricSpec) -> list[p.Query]:
    return [p.Query(q.quantile(spec, x, VARS), f"p{x * 100:g}", exemplar=True)
            for x in QUANTILES]


def _buckets(spec: c.MetricSpec) -> str:
    return f"sum by (le) (increase({q.series(spec, VARS, suffix='_bucket')}[$__rate_interval]))"


def _tokens(by: tuple[str, ...] = ()) -> list[p.Query]:
    legend = " ".join(f"{{{{{label}}}}}" for label in by)
    return [p.Query(q.rate_sum(c.PROMPT_TOKENS, VARS, by), f"{legend} in".strip()),
            p.Query(q.rate_sum(c.GENERATION_TOKENS, VARS, by), f"{legend} out".strip())]


def _errors() -> str:
    bad = q.rate_sum(c.REQUESTS, VARS, extra=c.SERVER_FAILURE_MATCHER)
    # No error series at all is a ratio of 0, not no data.
    return q.ratio(f"({bad} or vector(0))",
                   q.rate_sum(c.REQUESTS, VARS, extra='outcome!="cancelled"'))


def build() -> g.Dashboard:
    lay = p.Layout()
    lay.add(p.row("Now"))
    lay.add(p.stat("Requests / s", [p.Query(q.rate_sum(c.REQUESTS, VARS))], "reqps"), w=6, h=4)
    lay.add(p.stat("Output tokens / s", [p.Query(q.rate_sum(c.GENERATION_TOKENS, VARS))],
                   "short"), w=6, h=4)
    lay.add(p.stat("TTFT p95", [p.Query(q.quantile(c.TIME_TO_FIRST_TOKEN, 0.95, VARS))], "s",
                   thresholds=[{"color": "green", "value": None},
                               {"color": "orange", "value": 0.5},
                               {"color": "red", "value": 2.0}]), w=6, h=4)
    lay.add(p.stat("Error ratio", [p.Query(_errors())], "percentunit",
                   "Errors and rejections / requests that were not cancelled by the client.",
                   thresholds=[{"color": "green", "value": None},
                               {"color": "orange", "value": 0.001},
                               {"color": "red", "value": 0.01}], decimals=2), w=6, h=4)

    lay.add(p.row("Latency"))
    lay.add(p.timeseries("Time to first token", _quantiles(c.TIME_TO_FIRST_TOKEN), "s",
                         c.TIME_TO_FIRST_TOKEN.help))
    lay.add(p.timeseries("Inter-token latency", _quantiles(c.INTER_TOKEN_LATENCY), "s",
                         c.INTER_TOKEN_LATENCY.help))
    lay.add(p.timeseries("End-to-end latency", _quantiles(c.E2E_REQUEST_LATENCY), "s",
                         c.E2E_REQUEST_LATENCY.help))
    lay.add(p.timeseries("Queue time", _quantiles(c.REQUEST_QUEUE_TIME), "s",
                         f"{c.REQUEST_QUEUE_TIME.help} Empty where only sidecars run and the"
                         " engine returns no per-request metrics."))
    lay.add(p.heatmap("Time to first token, every request", _buckets(c.TIME_TO_FIRST_TOKEN),
                      "s", "Requests per TTFT bucket over time; the dots are exemplars (a"
                      " request's trace id)."))
    lay.add(p.heatmap("Inter-token latency, every gap", _buckets(c.INTER_TOKEN_LATENCY), "s",
                      "Token gaps per ITL bucket over time: the tail the p99 line hides."))
    lay.add(p.timeseries("TTFT p95 by model", [p.Query(
        q.quantile(c.TIME_TO_FIRST_TOKEN, 0.95, VARS, by=("model",)), "{{model}}")], "s"),
        w=24)

    lay.add(p.row("Traffic"))
    lay.add(p.timeseries("Tokens / s in and out", _tokens(), "short",
                         "Prompt tokens (in) and generated tokens (out) of finished requests."))
    lay.add(p.timeseries("Requests by outcome", [p.Query(
        q.rate_sum(c.REQUESTS, VARS, by=("outcome",)), "{{outcome}}")], "reqps",
        c.REQUESTS.help, stacked=True))
    lay.add(p.timeseries("Tokens / s by tenant", _tokens(("tenant",)), "short", stacked=True))
    lay.add(p.timeseries("Tokens / s by feature", _tokens(("feature",)), "short",
                         stacked=True))

    lay.add(p.row("Engine"))
    lay.add(p.timeseries("KV-cache usage", [p.Query(
        f"max by (pod, engine) ({q.series(c.ENGINE_KV_CACHE_USAGE, VARS)})",
        "{{pod}} {{engine}}")], "percentunit", c.ENGINE_KV_CACHE_USAGE.help, max_value=1,
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 0.9}]))
    lay.add(p.timeseries("Requests running and waiting", [
        p.Query(f"sum({q.series(c.ENGINE_REQUESTS_RUNNING, VARS)})", "running"),
        p.Query(f"sum({q.series(c.ENGINE_REQUESTS_WAITING, VARS)})", "waiting")], "short"))
    lay.add(p.timeseries("Preemptions / s", [p.Query(
        q.rate_sum(c.ENGINE_PREEMPTIONS, VARS, by=("pod",)), "{{pod}}")], "short",
        c.ENGINE_PREEMPTIONS.help))
    lay.add(p.timeseries("Prefix-cache hit rate", [p.Query(q.ratio(
        q.rate_sum(c.ENGINE_PREFIX_CACHE_HITS, VARS),
        q.rate_sum(c.ENGINE_PREFIX_CACHE_QUERIES, VARS)), "hit rate")], "percentunit",
        "Prompt tokens found in the prefix cache / prompt tokens looked up.", max_value=1))
    lay.add(p.stat("Engines up", [p.Query(
        f"sum({q.series(c.ENGINE_UP, VARS)})", "up")], "none", c.ENGINE_UP.help, graph=False),
        w=12, h=4)
    lay.add(p.stat("Engines down", [p.Query(
        f"count({q.series(c.ENGINE_UP, VARS)} == 0) or vector(0)", "down")], "none",
        thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
        graph=False), w=12, h=4)

    variables = p.serving_variables()
    return p.dashboard(UID, "llmkpi · Serving", "TTFT, inter-token and end-to-end latency,"
                       " tokens, outcomes and engine state per model, tenant and pod.",
                       ["serving"], lay, variables)
