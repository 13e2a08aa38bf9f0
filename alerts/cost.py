"""Cost alerts: a model's cost per million tokens over budget; a tenant's token rate far
above its own 7-day baseline."""

from __future__ import annotations

from alerts import rules as r
from alerts.config import AlertConfig
from specs import catalog as c


def _per_model(config: AlertConfig) -> list[tuple[str, float, dict[str, str]]]:
    """(matcher, budget, own labels): every model not named, then each named one (its
    `model` label keeps the rules apart, as `promtool check rules` asks)."""
    named = sorted(config.cost.models)
    others = f'model!~"{"|".join(named)}",' if named else ""
    return [(others, config.cost.budget_per_million_tokens, {}),
            *((f'model="{m}",', config.cost.models[m], {"model": m}) for m in named)]


def recordings() -> list[r.Recording]:
    by_tenant = "sum by (tenant) (rate({}[1h]))"
    return [r.Recording(c.TENANT_TOKEN_RATE.name,
                        f"{by_tenant.format(c.PROMPT_TOKENS.name)}"
                        f" + {by_tenant.format(c.GENERATION_TOKENS.name)}")]


def alerts(config: AlertConfig) -> list[r.Alert]:
    cost, url = config.cost, config.runbook_url
    out = [r.Alert(
        "LlmkpiCostPerMillionTokensOverBudget",
        f'{c.COST_PER_MILLION_TOKENS.name}{{{matcher}token_kind="blended",basis="fully_loaded"}}'
        f" > {r.number(budget)}", "ticket",
        "{{ $labels.model }} costs {{ $value | printf \"$%.3f\" }} per million tokens",
        f"Fully loaded GPU cost per million tokens (the bill, idle included, ÷ tokens) in"
        f" the KPI period is over the budget of ${budget:g}: more idle GPU time, or fewer"
        " tokens per GPU-second.",
        f"{url}#llmkpicostpermilliontokensoverbudget", for_="30m", labels=labels)
        for matcher, budget, labels in _per_model(config)]
    rate = c.TENANT_TOKEN_RATE.name
    out.append(r.Alert(
        "LlmkpiTenantTokenSpike",
        f"{rate} > {r.number(cost.tenant_spike_factor)} * avg_over_time({rate}[7d])"
        f" and {rate} > {r.number(cost.tenant_spike_min_tokens_per_second)}", "ticket",
        "Tenant {{ $labels.tenant }} uses tokens at"
        f" {cost.tenant_spike_factor:g}x its 7-day rate",
        "{{ $value | printf \"%.0f\" }} tokens/s over the last hour, more than"
        f" {cost.tenant_spike_factor:g} times the tenant's own mean of the last 7 days, for"
        " 30 minutes: a new integration, a loop, or abuse — and its GPU bill follows.",
        f"{url}#llmkpitenanttokenspike", for_="30m"))
    return out
