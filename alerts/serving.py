"""Serving alerts: a full KV cache, a growing queue, a long latency tail, errors, the
sidecar or engine readings going missing, telemetry losing or holding back records, and
across prefill and decode: failing KV transfers, expired KV leases, a saturated stage."""

from __future__ import annotations

from alerts import rules as r
from alerts.config import AlertConfig
from specs import catalog as c
from specs.gateway import either


def _e2e_quantile(q: float) -> str:
    return (f"histogram_quantile({q:g}, sum by (le, model) "
            f"(rate({c.E2E_REQUEST_LATENCY.name}_bucket[10m])))")


def alerts(config: AlertConfig) -> list[r.Alert]:
    s, job, url = config.serving, config.sidecar_job, config.runbook_url
    requests = c.REQUESTS.name
    # the endpoint picker's own series, either generation; prefill and decode, not effective
    saturation = either("pool_saturation", '{}{{stage=~"prefill|decode"}}')
    return [
        r.Alert("LlmkpiKVCacheNearlyFull",
                f"max by (pod, engine, model) ({c.ENGINE_KV_CACHE_USAGE.name})"
                f" > {r.number(s.kv_cache_usage_max)}", "ticket",
                "KV cache of {{ $labels.pod }} ({{ $labels.model }}) above"
                f" {s.kv_cache_usage_max:.0%}",
                "{{ $value | humanizePercentage }} of the KV-cache blocks in use for 5"
                " minutes: new requests wait and running ones get preempted.",
                f"{url}#llmkpikvcachenearlyfull", for_="5m"),
        r.Alert("LlmkpiWaitingQueueGrowing",
                f"sum by (pod, model) ({c.ENGINE_REQUESTS_WAITING.name}) > 0 and"
                f" sum by (pod, model) (deriv({c.ENGINE_REQUESTS_WAITING.name}[10m])) > 0",
                "ticket", "Waiting queue of {{ $labels.pod }} ({{ $labels.model }}) keeps"
                " growing", "{{ $value }} requests waiting and the queue has grown for 15"
                " minutes: arrivals outpace what the engine finishes.",
                f"{url}#llmkpiwaitingqueuegrowing", for_="15m"),
        r.Alert("LlmkpiLatencyTailHigh",
                f"{_e2e_quantile(0.99)} / ({_e2e_quantile(0.5)} > 0)"
                f" > {r.number(s.e2e_tail_ratio_max)}", "ticket",
                "End-to-end p99 of {{ $labels.model }} over"
                f" {s.e2e_tail_ratio_max:g}x its median",
                "p99 / p50 end-to-end latency is {{ $value | printf \"%.1f\" }} over 10"
                " minutes: a few requests wait far longer than the rest.",
                f"{url}#llmkpilatencytailhigh", for_="15m"),
        r.Alert("LlmkpiErrorRatioHigh",
                f"sum by (model) (rate({requests}{{{c.SERVER_FAILURE_MATCHER}}}[5m]))"
                f' / (sum by (model) (rate({requests}{{outcome!="cancelled"}}[5m])) > 0)'
                f" > {r.number(s.error_ratio_max)}", "page",
                "{{ $labels.model }}: {{ $value | humanizePercentage }} of requests fail",
                "Server-side failures (5xx, engine unreachable, broken streams) over requests"
                " not cancelled by the client, for 5"
                f" minutes, above {s.error_ratio_max:.1%}.",
                f"{url}#llmkpierrorratiohigh", for_="5m"),
        r.Alert("LlmkpiSidecarDown",
                f'up{{job="{job}"}} == 0 or absent(up{{job="{job}"}})', "page",
                "Prometheus cannot scrape sidecar {{ if $labels.instance }}"
                f"{{{{ $labels.instance }}}}{{{{ else }}}}targets: no {job} target at all"
                "{{ end }}",
                f"The {job} target has been down (or no target exists) for 2 minutes:"
                " no serving metrics, and the pod's traffic may not be flowing.",
                f"{url}#llmkpisidecardown", for_="2m"),
        r.Alert("LlmkpiTelemetryLosingRecords",
                " or ".join(f"sum by (instance, sink) (increase({m.name}[10m])) > 0" for m in (
                    c.SINK_DROPPED, c.SINK_FAILED, c.SINK_QUARANTINED))
                + f" or sum by (instance, consumer) (increase({c.JOURNAL_QUARANTINED.name}"
                "[10m])) > 0", "ticket",
                "Telemetry of {{ $labels.instance }} lost or set aside records"
                " ({{ $labels.sink }}{{ $labels.consumer }})",
                "{{ $value }} records in 10 minutes were dropped by a full queue, failed in a"
                " sink, or were refused by the store and quarantined: the ledger, events or"
                " metrics miss them until someone looks.",
                f"{url}#llmkpitelemetrylosingrecords"),
        r.Alert("LlmkpiTelemetryStoreFailing",
                f"sum by (instance, sink) (increase({c.SINK_WRITE_FAILURES.name}[10m])) > 0"
                f" or sum by (instance, consumer) (increase({c.JOURNAL_FAILURES.name}[10m]))"
                " > 0", "ticket",
                "Telemetry of {{ $labels.instance }} cannot write"
                " ({{ $labels.sink }}{{ $labels.consumer }})",
                "A sink's store refused {{ $value }} batch writes in 10 minutes, for 10"
                " minutes: the records wait (in the journal, or in memory up to a bound) and"
                " the ledger falls behind.", f"{url}#llmkpitelemetrystorefailing",
                for_="10m"),
        r.Alert("LlmkpiKvTransfersFailing",
                f"sum by (pod, model) (rate({c.ENGINE_KV_TRANSFER_FAILURES.name}[10m]))"
                f" / (sum by (pod, model) (rate({c.ENGINE_KV_TRANSFER_FAILURES.name}[10m]))"
                f" + sum by (pod, model) (rate({c.ENGINE_KV_TRANSFERS.name}[10m])) > 0)"
                f" > {r.number(s.kv_transfer_failure_ratio_max)}", "ticket",
                "KV transfers into {{ $labels.pod }} ({{ $labels.model }}) failing",
                "{{ $value | humanizePercentage }} of KV-cache transfers from prefill failed"
                " over 10 minutes, for 10 minutes: each failed request is prefilled again on"
                " the decode pod (or fails), so TTFT and GPU cost rise.",
                f"{url}#llmkpikvtransfersfailing", for_="10m"),
        r.Alert("LlmkpiKvLeasesExpiring",
                f"sum by (pod, model) (increase({c.ENGINE_KV_EXPIRED.name}[10m])) > 0",
                "ticket", "Prefilled KV expires unused on {{ $labels.pod }}"
                " ({{ $labels.model }})",
                "{{ $value }} requests in 10 minutes had their prefilled KV expire on the"
                " prefill pod before the decode pod fetched it: prefill work thrown away.",
                f"{url}#llmkpikvleasesexpiring", for_="10m"),
        r.Alert("LlmkpiStageSaturated",
                f"max by (inference_pool, stage) {saturation}"
                f" > {r.number(s.stage_saturation_max)}", "ticket",
                "The {{ $labels.stage }} stage of pool {{ $labels.inference_pool }} is"
                " saturated", "The gateway reads the {{ $labels.stage }} stage at"
                " {{ $value | printf \"%.2f\" }} of its set point for 10 minutes: it holds"
                " requests back (or, without flow control, queues grow on the pods). Add"
                " capacity to that role, or rebalance prefill and decode pods.",
                f"{url}#llmkpistagesaturated", for_="10m"),
        r.Alert("LlmkpiEngineMetricsMissing",
                f"{c.ENGINE_UP.name} == 0 or (up{{job=\"{job}\"}} == 1 unless on (instance)"
                f" {c.ENGINE_UP.name})", "ticket",
                "Sidecar {{ $labels.instance }} has no engine readings",
                "The sidecar is up but cannot read its engine's /metrics (or exports no"
                " engine gauges) for 5 minutes: KV cache, queue and preemption panels go"
                " blank.", f"{url}#llmkpienginemetricsmissing", for_="5m"),
    ]
