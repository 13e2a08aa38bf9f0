"""Cost: GPU dollars per million tokens, who spent them, what sat idle, margin per tenant.

The dollar figures are `llmkpi kpi serve`'s gauges for its latest full period (the
allocation needs the inventory and the ledger); token rates come live from the sidecars.
"""

from __future__ import annotations

from grafanalib import core as g

from dashboards import panels as p
from dashboards import promql as q
from specs import catalog as c

UID = "llmkpi-cost"
VARS = ("model", "tenant", "feature")
BLENDED = 'token_kind="blended",basis="fully_loaded"'
MARGIN_STEPS: p.Steps = [{"color": "red", "value": None}, {"color": "orange", "value": 0.0},
                {"color": "green", "value": 0.5}]


def _sel(spec: c.MetricSpec, extra: str = "") -> str:
    return q.series(spec, VARS, extra)


def _tokens_total(by: str) -> str:
    return (f"sum by ({by}) (increase({_sel(c.PROMPT_TOKENS)}[$__range]))"
            f" + sum by ({by}) (increase({_sel(c.GENERATION_TOKENS)}[$__range]))")


def build() -> g.Dashboard:
    lay = p.Layout()
    lay.add(p.row("The period's bill"))
    lay.add(p.stat("GPU bill", [p.Query(f"sum({_sel(c.GPU_BILL)})")], "currencyUSD",
                   c.GPU_BILL.help, graph=False), w=6, h=4)
    lay.add(p.stat("Idle cost", [p.Query(f"sum({_sel(c.GPU_IDLE_COST)})")], "currencyUSD",
                   c.GPU_IDLE_COST.help, graph=False), w=6, h=4)
    lay.add(p.stat("Idle share of the bill", [p.Query(q.ratio(
        f"sum({_sel(c.GPU_IDLE_COST)})", f"sum({_sel(c.GPU_BILL)})"))], "percentunit",
        thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.4},
                    {"color": "red", "value": 0.7}], graph=False), w=6, h=4)
    lay.add(p.stat("$ / M tokens, fully loaded (dearest model)", [p.Query(
        f"max({_sel(c.COST_PER_MILLION_TOKENS, BLENDED)})")],
        "currencyUSD", "The highest over models of the GPU bill, idle included, per million"
        " tokens served (input and output together).", decimals=3, graph=False), w=6, h=4)

    lay.add(p.row("Cost per token"))
    lay.add(p.timeseries("$ per million tokens by model", [p.Query(
        _sel(c.COST_PER_MILLION_TOKENS), "{{model}} {{token_kind}} {{basis}}")], "currencyUSD",
        c.COST_PER_MILLION_TOKENS.help), w=24)

    lay.add(p.row("Who spent it"))
    lay.add(p.stat("GPU cost by tenant", [p.Query(_sel(c.TENANT_GPU_COST), "{{tenant}}")],
                   "currencyUSD", c.TENANT_GPU_COST.help, graph=False))
    lay.add(p.stat("GPU cost by feature", [p.Query(_sel(c.FEATURE_GPU_COST), "{{feature}}")],
                   "currencyUSD", c.FEATURE_GPU_COST.help, graph=False))
    lay.add(p.stat("Gross margin by tenant", [p.Query(_sel(c.TENANT_GROSS_MARGIN),
                                                     "{{tenant}}")],
                   "percentunit", c.TENANT_GROSS_MARGIN.help, thresholds=MARGIN_STEPS,
                   decimals=1, graph=False), w=24)
    lay.add(p.stat("Tokens by tenant (dashboard range)", [p.Query(_tokens_total("tenant"),
                                                                 "{{tenant}}")], "short",
                   "Prompt + generated tokens in the time range shown.", graph=False,
                   reduce="lastNotNull"))
    lay.add(p.stat("Tokens by feature (dashboard range)", [p.Query(_tokens_total("feature"),
                                                                  "{{feature}}")], "short",
                   graph=False, reduce="lastNotNull"))
    lay.add(p.timeseries("Token rate by tenant", [p.Query(
        f"{q.rate_sum(c.PROMPT_TOKENS, VARS, ('tenant',))}"
        f" + {q.rate_sum(c.GENERATION_TOKENS, VARS, ('tenant',))}", "{{tenant}}")], "short",
        "Prompt + generated tokens per second; the cost alert compares it with 7 days.",
        stacked=True), w=24)

    variables = [p.datasource_variable(),
                 p.query_variable("model", "Model", f"label_values({c.REQUESTS.name}, model)"),
                 p.query_variable("tenant", "Tenant",
                                  f"label_values({c.REQUESTS.name}, tenant)"),
                 p.query_variable("feature", "Feature",
                                  f"label_values({c.REQUESTS.name}, feature)")]
    return p.dashboard(UID, "llmkpi · Cost", "GPU dollars per million tokens, cost and"
                       " tokens by tenant and feature, idle cost and margin per tenant.",
                       ["cost"], lay, variables, time_from="now-7d")
