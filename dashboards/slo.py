"""SLOs: objective, error budget remaining and burn rate per window, per SLO and model.

Reads only the series the generated recording rules write (catalog.RECORDED_SERIES), so it
shows whatever SLOs the SLO config declares without being rebuilt.
"""

from __future__ import annotations

from grafanalib import core as g

from dashboards import panels as p
from specs import catalog as c

UID = "llmkpi-slo"
SELECT = '{slo=~"$slo",model=~"$model"}'
LEGEND = "{{slo}} {{model}}"
# The burn-rate factors of the SRE workbook's 30-day alerts, drawn as lines.
BURN_LINES: p.Steps = [{"color": "green", "value": None}, {"color": "blue", "value": 1},
              {"color": "orange", "value": 3}, {"color": "red", "value": 14.4}]
BUDGET_STEPS: p.Steps = [{"color": "red", "value": None}, {"color": "orange", "value": 0.0},
                {"color": "green", "value": 0.25}]


def _s(series: c.RecordedSeries) -> str:
    return f"{series.name}{SELECT}"


def build() -> g.Dashboard:
    lay = p.Layout()
    lay.add(p.row("Objectives and budgets"))
    lay.add(p.stat("Objective", [p.Query(_s(c.SLO_OBJECTIVE), LEGEND)], "percentunit",
                   c.SLO_OBJECTIVE.help, decimals=2, graph=False))
    lay.add(p.stat("Error budget remaining", [p.Query(_s(c.SLO_BUDGET_REMAINING), LEGEND)],
                   "percentunit", c.SLO_BUDGET_REMAINING.help, thresholds=BUDGET_STEPS,
                   decimals=1, graph=False))
    lay.add(p.timeseries("Error budget remaining over time", [p.Query(
        _s(c.SLO_BUDGET_REMAINING), LEGEND)], "percentunit",
        f"{c.SLO_BUDGET_REMAINING.help} Below 0 the budget is overspent: −100 % is twice"
        " the budget spent.", thresholds=BUDGET_STEPS, min_value=None), w=24)
    lay.add(p.row("Burn rates"))
    lay.add(p.timeseries("Burn rate per window", [p.Query(
        _s(c.SLO_BURN_RATE), f"{LEGEND} {{{{window}}}}")], "short",
        f"{c.SLO_BURN_RATE.help} 1 spends the budget exactly over the period; the page"
        " alerts fire above 14.4 and 6, tickets above 3 and 1 (both windows of a pair).",
        thresholds=BURN_LINES), w=24)
    lay.add(p.timeseries("Error ratio per window", [p.Query(
        _s(c.SLO_ERROR_RATIO), f"{LEGEND} {{{{window}}}}")], "percentunit",
        c.SLO_ERROR_RATIO.help))
    lay.add(p.timeseries("Events per second per window", [
        p.Query(_s(c.SLO_EVENTS), f"{LEGEND} {{{{window}}}} all"),
        p.Query(_s(c.SLO_BAD_EVENTS), f"{LEGEND} {{{{window}}}} bad")], "short",
        "Numerator and denominator as recorded, kept apart so quiet hours do not mislead."))
    objective = c.SLO_OBJECTIVE.name
    variables = [p.datasource_variable(),
                 p.query_variable("slo", "SLO", f"label_values({objective}, slo)"),
                 p.query_variable("model", "Model",
                                  f'label_values({objective}{{slo=~"$slo"}}, model)')]
    return p.dashboard(UID, "llmkpi · SLOs", "Objectives, error budget remaining and"
                       " multi-window burn rates of the SLOs in the SLO config.", ["slo"],
                       lay, variables, time_from="now-24h")
