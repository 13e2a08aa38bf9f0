"""The inference gateway's endpoint picker (EPP), as its own /metrics names it: llm-d's router
(`llm_d_epp_*`, llm-d-router docs/metrics.md) and the Gateway API Inference Extension's older
names (`inference_pool_*`, `inference_objective_*`, `inference_model_*`,
`inference_extension_*`, pkg/epp/metrics). Dashboards and alerts query the EPP's series
directly (Prometheus scrapes the EPP pod) through `either`, so one panel works on both
generations of a deployment.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewaySeries:
    doc: str
    names: tuple[str, ...]  # newest first
    labels: str  # what distinguishes its series


GATEWAY_SERIES: dict[str, GatewaySeries] = {
    "pool_kv_cache": GatewaySeries(
        "Mean KV-cache utilisation across the pool's endpoints (0-1).",
        ("llm_d_epp_average_kv_cache_utilization",
         "inference_pool_average_kv_cache_utilization"), "name (the InferencePool)"),
    "pool_queue": GatewaySeries(
        "Mean waiting-queue depth across the pool's endpoints.",
        ("llm_d_epp_average_queue_size", "inference_pool_average_queue_size"),
        "name (the InferencePool)"),
    "ready_endpoints": GatewaySeries(
        "Ready endpoints (pods) in the pool.",
        ("llm_d_epp_ready_endpoints", "inference_pool_ready_pods"), "name (the InferencePool)"),
    "disagg_decisions": GatewaySeries(
        "Requests by the P/D routing decision: decode-only, prefill-decode,"
        " aggregated-fallback, encode-decode, encode-prefill-decode (counter).",
        ("llm_d_epp_disagg_decision_total", "llm_d_inference_scheduler_disagg_decision_total"),
        "decision_type, model_name"),
    "pool_saturation": GatewaySeries(
        "Saturation gating dispatch per stage (prefill, decode, effective = the larger); 1.0"
        " is the set point, above it oversubscribed (flow control on).",
        ("llm_d_epp_flow_control_pool_saturation",
         "inference_extension_flow_control_pool_saturation"), "inference_pool, stage"),
    "requests": GatewaySeries(
        "Requests the gateway handled (counter).",
        ("llm_d_epp_request_total", "inference_objective_request_total",
         "inference_model_request_total"), "model_name, target_model_name"),
}


def either(field: str, wrap: str = "{}") -> str:
    """PromQL reading whichever generation the EPP exports: `wrap` (with `{}` for the
    series name) applied to each name, joined by `or`."""
    names = GATEWAY_SERIES[field].names
    return "(" + " or ".join(wrap.format(name) for name in names) + ")"
