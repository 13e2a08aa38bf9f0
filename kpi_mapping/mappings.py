"""The 19 CEO-KPI → CTO-metric mappings (KPI_SPEC.md; seeds/000), declared as data.

Each record names both formulas, their units, which direction is better, the default bands
of the CTO metric, the store inputs, the Mixpanel events and, where a live series exists,
the PromQL that shows the CTO metric in Prometheus. The functions computing both sides live
in kpi_mapping/formulas and are bound to these ids in kpi_mapping/kpis.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from specs import catalog
from specs.kpi import Bands, Range

__all__ = ["MAPPINGS", "Bands", "Mapping", "Range"]

Better = Literal["higher", "lower", "within"]
Unit = Literal["ratio", "hours", "dollars", "days", "weeks", "months", "days_per_week", "seconds",
               "score", "multiple", "dollars_per_year"]
BAND_NAMES = ("green", "amber", "red")


@dataclass(frozen=True)
class Mapping:
    id: int
    key: str
    ceo_kpi: str
    ceo_formula: str
    ceo_unit: Unit
    cto_metric: str
    cto_formula: str
    cto_unit: Unit
    better: Better
    bands: Bands | None  # None: "set per company" in the KPI config
    sources: tuple[str, ...]
    events: tuple[str, ...] = ()
    promql: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def higher(green: float, amber: float) -> Bands:
    return Bands(Range(lo=green), Range(lo=amber))


def lower(green: float, amber: float) -> Bands:
    return Bands(Range(hi=green), Range(hi=amber))


def within(green: tuple[float, float], amber: tuple[float, float]) -> Bands:
    return Bands(Range(*green), Range(*amber))


TTFT_P95 = ("histogram_quantile(0.95, sum by (le) "
            f"(rate({catalog.TIME_TO_FIRST_TOKEN.name}_bucket[5m])))")
OK_RATE = f'sum(rate({catalog.REQUESTS.name}{{outcome="ok"}}[5m]))'

MAPPINGS: tuple[Mapping, ...] = (
    Mapping(1, "revenue_growth", "Revenue growth rate", "(revenue − previous revenue) /"
            " previous revenue", "ratio", "Development cycle time",
            "median per change (first successful production deploy finished − commit"
            " authored), hours", "hours", "lower", lower(24, 168),
            ("finance", "git", "deployments"), ("feature_deployed",)),
    Mapping(2, "gross_margin", "Gross margin", "(revenue − COGS) / revenue; COGS includes"
            " the GPU bill", "ratio", "Cloud resource utilization",
            "busy GPU-seconds / provisioned GPU-seconds (KV-cache usage beside)", "ratio",
            "within", within((0.60, 0.90), (0.40, 0.95)),
            ("finance", "gpus", "ledger", "engine snapshots"), ("resource_spike",),
            f"avg({catalog.ENGINE_KV_CACHE_USAGE.name})"),
    Mapping(3, "net_profit_margin", "Net profit margin", "net income / revenue", "ratio",
            "Cost per defect", "Σ defect fix hours × mean loaded hourly rate / defects fixed",
            "dollars", "lower", None, ("finance", "work-items", "people"),
            ("defect_encountered",)),
    Mapping(4, "operating_cash_flow", "Operating cash flow", "Σ operating cash flow",
            "dollars", "Technical-debt reduction", "debt items resolved in the period /"
            " debt items open at its start", "ratio", "higher", higher(0.20, 0.10),
            ("finance", "work-items")),
    Mapping(5, "cash_runway", "Cash runway", "cash at period end / monthly net burn",
            "months", "Release burndown", "days the next release is forecast late:"
            " remaining points / trailing-4-week velocity vs its target date", "days",
            "lower", lower(0.001, 7.001), ("finance", "work-items", "releases")),
    Mapping(6, "cac", "Customer acquisition cost", "sales & marketing spend / new customers",
            "dollars", "Feature adoption rate", "users who engaged the newest shipped"
            " feature / active users", "ratio", "higher", higher(0.40, 0.20),
            ("finance", "mixpanel"), ("feature_deployed", "feature_engaged")),
    Mapping(7, "ltv", "Customer lifetime value", "ARPA × gross margin / monthly churn",
            "dollars", "Uptime", "(period − downtime) / period, from engine readings (else"
            " 1 − server-side failures / requests not cancelled)", "ratio", "higher",
            higher(0.999, 0.995),
            ("finance", "engine snapshots", "ledger"),
            ("downtime_experienced", "recovery_noticed"), f"avg({catalog.ENGINE_UP.name})"),
    Mapping(8, "ltv_to_cac", "LTV : CAC", "LTV / CAC", "multiple",
            "Automated test coverage", "covered lines / lines, latest report per component",
            "ratio", "higher", higher(0.80, 0.65), ("finance", "coverage")),
    Mapping(9, "net_revenue_retention", "Net revenue retention", "(start MRR + expansion −"
            " contraction − churned) / start MRR", "ratio", "System scalability index",
            "peak hourly load served within SLO / median hourly load", "multiple", "higher",
            higher(3, 2), ("finance", "ledger"), (),
            f"max_over_time({OK_RATE}[7d:5m]) / quantile_over_time(0.5, {OK_RATE}[7d:5m])"),
    Mapping(10, "churn_rate", "Churn rate", "customers lost / customers at start", "ratio",
            "MTTR", "mean(resolved − detected) over incidents resolved in the period"
            " (median and DORA failed-deployment recovery beside)", "hours", "lower",
            lower(1, 24), ("finance", "incidents"), ("downtime_experienced",
                                                      "recovery_noticed")),
    Mapping(11, "arpa", "Average revenue per account", "the period's revenue /"
            " accounts at its end",
            "dollars", "Innovation pipeline strength", "open ideas / ideas delivered per week"
            " (trailing 8 weeks)", "weeks", "within", within((4, 12.001), (2, 20.001)),
            ("finance", "work-items")),
    Mapping(12, "burn_multiple", "Burn multiple", "net burn / net new ARR, both over"
            " the period", "multiple",
            "Deployment frequency", "days with a successful production deployment per week"
            " (deploys per day and change failure rate beside)", "days_per_week", "higher",
            higher(5, 1), ("finance", "deployments", "incidents"), ("feature_deployed",)),
    Mapping(13, "sales_cycle_length", "Sales cycle length", "mean(close − first contact),"
            " days", "days", "Response time", "p95 time to first token (p95 end-to-end"
            " beside)", "seconds", "lower", lower(0.5, 2.0), ("finance", "ledger"),
            ("response_delayed",), TTFT_P95),
    Mapping(14, "employee_turnover", "Employee turnover", "exits / average headcount",
            "ratio", "Team attrition", "engineering exits / average engineering headcount,"
            " per quarter", "ratio", "lower", lower(0.03, 0.06), ("people",)),
    Mapping(15, "nps", "Net promoter score", "% promoters (9–10) − % detractors (0–6)",
            "score", "Customer satisfaction & retention", "in-product NPS (returning-user"
            " rate beside)", "score", "higher", higher(40, 0), ("mixpanel",),
            ("nps_submitted",)),
    Mapping(16, "dso", "Days sales outstanding", "receivables / revenue × days", "days",
            "Platform compatibility score", "successful integrations / attempts", "ratio",
            "higher", higher(0.98, 0.95), ("finance", "integrations", "mixpanel"),
            ("integration_attempted",)),
    Mapping(17, "growth_efficiency", "Growth efficiency", "net new ARR / (S&M + R&D),"
            " both over the period",
            "multiple", "Security incident response time", "mean(contained − detected) over"
            " security incidents", "hours", "lower", lower(1, 4), ("finance", "incidents")),
    Mapping(18, "ebitda", "EBITDA", "EBITDA as finance reports it", "dollars",
            "Tech-team turnover", "tech exits / average tech headcount, per quarter"
            " (replacement cost beside)", "ratio", "lower", lower(0.03, 0.06),
            ("finance", "people")),
    Mapping(19, "revenue_per_employee", "Revenue per employee", "revenue per"
            " year / average headcount", "dollars_per_year", "Engineer Productivity Index",
            "revenue attributable to shipped features per year / average tech headcount",
            "dollars_per_year", "higher", higher(500_000, 250_000),
            ("finance", "people", "mixpanel", "tenant-revenue"),
            ("feature_deployed", "feature_engaged")),
)
NORTH_STAR = 19


def by_id(mapping_id: int) -> Mapping:
    for mapping in MAPPINGS:
        if mapping.id == mapping_id:
            return mapping
    raise KeyError(f"no mapping {mapping_id}: ids are 1-{len(MAPPINGS)}")
