"""KPI alerts: a CTO metric out of its green band; the KPI gauges going stale."""

from __future__ import annotations

from alerts import rules as r
from alerts.config import AlertConfig
from specs import catalog as c


def alerts(config: AlertConfig) -> list[r.Alert]:
    kpi, url = config.kpi, config.runbook_url
    return [
        r.Alert("LlmkpiKPIOutOfBand", f"{c.KPI_BAND.name} > 0", "ticket",
                "KPI {{ $labels.mapping }} ({{ $labels.key }}): the CTO metric is"
                " {{ if eq $value 2.0 }}red{{ else }}amber{{ end }}",
                "The CTO metric of mapping {{ $labels.mapping }} ({{ $labels.key }}) is"
                " {{ with printf `" + c.KPI_CTO_VALUE.name + "{mapping=\"%s\"}`"
                " $labels.mapping | query }}{{ . | first | value | printf \"%.4g\" }}"
                "{{ else }}unknown{{ end }}, outside its green band in the latest full period"
                " (the band judges the CTO side; the CEO KPI beside it is"
                " {{ with printf `" + c.KPI_CEO_VALUE.name + "{mapping=\"%s\"}`"
                " $labels.mapping | query }}{{ . | first | value | printf \"%.4g\" }}"
                "{{ else }}unknown{{ end }}). `llmkpi kpi report` shows the band and what"
                " changed.", f"{url}#llmkpikpioutofband",
                for_=r.duration(kpi.out_of_band_for_seconds), labels={"side": "cto"}),
        r.Alert("LlmkpiKPIGaugesStale",
                f"time() - {c.KPI_REFRESHED.name} > {r.number(kpi.stale_after_seconds)}"
                f" or increase({c.KPI_REFRESH_FAILURES.name}[1h]) > 0", "ticket",
                "KPI gauges are not refreshing",
                "`llmkpi kpi serve` has not refreshed the KPI gauges for"
                f" {r.duration(kpi.stale_after_seconds)}, or a refresh failed in the last"
                " hour: the Executive dashboard shows old numbers.",
                f"{url}#llmkpikpigaugesstale", for_="10m"),
    ]
