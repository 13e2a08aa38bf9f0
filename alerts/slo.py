"""SLOs as recording rules and multi-window, multi-burn-rate alerts (SRE workbook, ch. 5).

Per SLO and model the rules record events and bad events per second over every window,
apart (a ratio of averages misleads on quiet services, Sloth #354), then the error ratio
guarded against zero traffic, the burn rate, the objective and the budget left.
"""

from __future__ import annotations

from dataclasses import dataclass

from alerts import rules as r
from alerts.config import AlertConfig
from specs import catalog as c
from specs.slo import Slo, Target

MONTH = 30 * 86_400.0
TINY = "1e-12"  # events per second below any real traffic: 0 / TINY is 0, not NaN


@dataclass(frozen=True)
class BurnWindow:
    """Alert when both windows burn faster than `factor` (workbook's 30-day table)."""

    severity: r.Severity
    factor: float
    long_seconds: float
    short_seconds: float


# Budget spent before alerting: 2 % in 1 h, 5 % in 6 h (page), 10 % in 1 d and in 3 d
# (ticket). factor = share x period / long window, so scaling the windows with the period
# keeps the factors.
WORKBOOK = (BurnWindow("page", 14.4, 3_600, 300), BurnWindow("page", 6, 21_600, 1_800),
            BurnWindow("ticket", 3, 86_400, 7_200), BurnWindow("ticket", 1, 259_200, 21_600))


def windows(period_seconds: float) -> list[tuple[BurnWindow, str, str]]:
    """(window, long, short) with the windows scaled to the period, as Prometheus durations."""
    scale = period_seconds / MONTH
    return [(w, r.duration(w.long_seconds * scale), r.duration(w.short_seconds * scale))
            for w in WORKBOOK]


@dataclass(frozen=True)
class Scope:
    """One SLO for one model (or every model the config does not name)."""

    slo: Slo
    target: Target
    model_matcher: str  # PromQL label matcher on `model`, "" for every model
    model: str | None = None  # the one model this scope is for

    def labels(self, **more: str) -> dict[str, str]:
        """The rules' own labels: the SLO, and the model of a per-model scope (which keeps
        the rules of two scopes apart, as `promtool check rules` asks)."""
        own = {"slo": self.slo.name, **more}
        return {**own, "model": self.model} if self.model else own

    def select(self, *more: str) -> str:
        parts = [p for p in (self.model_matcher, *more) if p]
        return "{" + ",".join(parts) + "}" if parts else ""

    def recorded(self, series: c.RecordedSeries, window: str | None = None) -> str:
        slo_matcher = f'slo="{self.slo.name}"'
        window_matcher = f'window="{window}"' if window else ""
        return series.name + self.select(slo_matcher, window_matcher)


def scopes(slo: Slo) -> list[Scope]:
    named = sorted(slo.models)
    found = [Scope(slo, slo.default,
                   f'model!~"{"|".join(named)}"' if named else "")]
    found += [Scope(slo, slo.models[m], f'model="{m}"', m) for m in named]
    return found


def _events(scope: Scope, window: str, throttled: bool) -> tuple[str, str]:
    """(events, bad events) per second over the window, summed by model, as the SLI's one
    definition in specs/slo.py says (kpi_mapping/slo.py evaluates the ledger by the same)."""
    sli = scope.slo.spec
    if sli.kind == "requests":
        not_events = (f'outcome!="{sli.not_events[0]}"' if len(sli.not_events) == 1
                      else f'outcome!~"{"|".join(sli.not_events)}"')
        valid = c.REQUESTS.name + scope.select(not_events)
        bad_outcomes = "|".join(sli.bad_outcomes)
        bad = f"sum by (model) (rate({c.REQUESTS.name}" \
            f"{scope.select(f'outcome=~{chr(34)}{bad_outcomes}{chr(34)}')}[{window}]))"
        if throttled and sli.throttled_status is not None:
            # a throttled request is "rejected", never a bad outcome: the sets are disjoint
            code = f'code="{sli.throttled_status}"'
            bad += f" + sum by (model) (rate({c.REQUESTS.name}{scope.select(code)}[{window}]))"
        events = f"sum by (model) (rate({valid}[{window}]))"
        # No error series at all is zero errors, not no data.
        return events, f"(({bad}) or 0 * {events})"
    spec = sli.histogram
    assert spec is not None and scope.target.threshold_seconds is not None
    le = c.le_label(scope.target.threshold_seconds)
    count = f"sum by (model) (rate({spec.name}_count{scope.select()}[{window}]))"
    le_matcher = f'le="{le}"'
    good = f"sum by (model) (rate({spec.name}_bucket{scope.select(le_matcher)}[{window}]))"
    return count, f"clamp_min({count} - {good}, 0)"


def recordings(scope: Scope, throttled: bool = False) -> list[r.Recording]:
    budget = r.number(1 - scope.target.objective)
    wins = windows(scope.target.period_seconds)
    short = wins[0][2]
    period = r.duration(scope.target.period_seconds)
    ordered = sorted({d for _, long, shrt in wins for d in (long, shrt)},
                     key=r.seconds)
    out = []
    for window in ordered:
        events, bad = _events(scope, window, throttled)
        labels = scope.labels(window=window)
        out += [r.Recording(c.SLO_EVENTS.name, events, labels),
                r.Recording(c.SLO_BAD_EVENTS.name, bad, labels)]
    # Over the period: the mean of the shortest window's rates, numerator and denominator
    # apart, so their ratio is bad events / events over the period.
    labels = scope.labels(window=period)
    out += [r.Recording(c.SLO_EVENTS.name, f"avg_over_time("
                        f"{scope.recorded(c.SLO_EVENTS, short)}[{period}])", labels),
            r.Recording(c.SLO_BAD_EVENTS.name, f"avg_over_time("
                        f"{scope.recorded(c.SLO_BAD_EVENTS, short)}[{period}])", labels)]
    for window in [*ordered, period]:
        out.append(r.Recording(
            c.SLO_ERROR_RATIO.name, f"{scope.recorded(c.SLO_BAD_EVENTS, window)}"
            f" / clamp_min({scope.recorded(c.SLO_EVENTS, window)}, {TINY})",
            scope.labels(window=window)))
    ratio = scope.recorded(c.SLO_ERROR_RATIO)
    out += [
        r.Recording(c.SLO_BURN_RATE.name, f"{ratio} / {budget}", scope.labels()),
        r.Recording(c.SLO_OBJECTIVE.name, f"0 * max without (window) ("
                    f"{scope.recorded(c.SLO_EVENTS, period)})"
                    f" + {r.number(scope.target.objective)}", scope.labels()),
        r.Recording(c.SLO_BUDGET_REMAINING.name, f"1 - max without (window) ("
                    f"{scope.recorded(c.SLO_ERROR_RATIO, period)}) / {budget}", scope.labels()),
    ]
    return out


ALERT_NAMES = {"page": "LlmkpiErrorBudgetBurnFast", "ticket": "LlmkpiErrorBudgetBurnSlow"}


def burn_alerts(scope: Scope, runbook_url: str) -> list[r.Alert]:
    budget = 1 - scope.target.objective
    period = r.duration(scope.target.period_seconds)
    words = scope.slo.spec.bad_events.format(t=scope.target.threshold_seconds or 0)
    out = []
    severities: tuple[r.Severity, ...] = ("page", "ticket")
    for severity in severities:
        mine = [(w, long, short) for w, long, short in windows(scope.target.period_seconds)
                if w.severity == severity]
        expr = " or ".join("(" + " and ".join(
            f"max without (window) ({scope.recorded(c.SLO_ERROR_RATIO, d)})"
            f" > {r.number(w.factor * budget)}" for d in (long, short)) + ")"
            for w, long, short in mine)
        fastest, long, _ = mine[0]
        name = ALERT_NAMES[severity]
        out.append(r.Alert(
            name, expr, severity,
            summary=f"SLO {scope.slo.name} of {{{{ $labels.model }}}}: error budget burning"
                    f" {'fast' if severity == 'page' else 'steadily'}",
            description=f"{{{{ $value | humanizePercentage }}}} of {words} (over the long"
                        f" window, {long} at the fastest), against an objective of"
                        f" {scope.target.objective:.10g} over {period}: at"
                        f" {fastest.factor:g}x the budget is gone within"
                        f" {r.duration(scope.target.period_seconds / fastest.factor)}.",
            runbook=f"{runbook_url}#{name.lower()}",
            labels=scope.labels()))
    return out


def groups(config: AlertConfig) -> list[r.Group]:
    recorded: list[r.Recording | r.Alert] = []
    alerting: list[r.Recording | r.Alert] = []
    for slo in config.slos:
        for scope in scopes(slo):
            recorded += recordings(scope, config.throttled_is_failure)
            alerting += burn_alerts(scope, config.runbook_url)
    # one group: Prometheus evaluates a group's rules in order, so every alert reads the
    # ratios recorded in this same evaluation (across groups the order is not fixed)
    return [r.Group("llmkpi-slo", recorded + alerting)]
