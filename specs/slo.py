"""One SLO model and one definition of each SLI: what an event is and what a bad event is.

The SLO config (alerts/config.py) parses into these; the PromQL generator (alerts/slo.py)
and the ledger evaluation (kpi_mapping/slo.py) both derive from `SLIS`, so the recording
rules and the page judge the same requests the same way (SRE workbook ch. 2: an SLI is
good events / valid events).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from specs import catalog
from specs.availability import SERVER_FAILURE_OUTCOMES, THROTTLED_STATUS

SliName = Literal["availability", "ttft", "itl"]
DAY = 86_400.0


@dataclass(frozen=True)
class Sli:
    """A request SLI counts requests by outcome; a latency SLI counts observations of a
    histogram (a request's first token, each token gap) against a threshold."""

    name: SliName
    kind: Literal["requests", "latency"]
    bad_events: str  # what a bad event is, in words, for alerts and the page
    histogram: catalog.MetricSpec | None = None  # latency: the histogram judged
    not_events: tuple[str, ...] = ()  # requests: outcomes that are neither good nor bad
    bad_outcomes: tuple[str, ...] = ()  # requests: outcomes that are bad
    throttled_status: int | None = None  # requests: bad too where the config counts it


SLIS: dict[str, Sli] = {
    "availability": Sli("availability", "requests", "requests that failed on the server side",
                        not_events=("cancelled",), bad_outcomes=SERVER_FAILURE_OUTCOMES,
                        throttled_status=THROTTLED_STATUS),
    "ttft": Sli("ttft", "latency", "requests whose first token came later than {t:g} s",
                catalog.TIME_TO_FIRST_TOKEN),
    "itl": Sli("itl", "latency", "token gaps longer than {t:g} s", catalog.INTER_TOKEN_LATENCY),
}


@dataclass(frozen=True)
class Target:
    """What one SLO promises for a model (or for every model not named)."""

    objective: float
    period_seconds: float = 30 * DAY
    threshold_seconds: float | None = None

    @property
    def error_budget(self) -> float:
        """The share of events allowed to be bad."""
        return 1.0 - self.objective


@dataclass(frozen=True)
class Slo:
    name: str
    sli: SliName
    default: Target
    models: dict[str, Target] = field(default_factory=dict)

    @property
    def spec(self) -> Sli:
        return SLIS[self.sli]

    def target_for(self, model: str) -> Target:
        return self.models.get(model, self.default)

    def describe_bad(self) -> str:
        return self.spec.bad_events.format(t=self.default.threshold_seconds or 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Slo:
        return cls(str(doc["name"]), doc["sli"], Target(**doc["default"]),
                   {m: Target(**t) for m, t in (doc.get("models") or {}).items()})


def slo(name: str, sli: SliName, objective: float, threshold_seconds: float | None = None,
        period_seconds: float = 30 * DAY) -> Slo:
    """An SLO with one target for every model (tests, the page's defaults)."""
    return Slo(name, sli, Target(objective, period_seconds, threshold_seconds))
