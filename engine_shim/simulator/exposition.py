"""A small Prometheus text-format writer for the simulator's vLLM-named metrics.

engine_shim may not import prometheus_client (ARCHITECTURE.md), and the simulator must speak
exactly vLLM's names and types, so it writes the format itself.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{k}="{v}"' for k, v in pairs)
    return "{" + body + "}" if body else ""


class Family:
    def __init__(self, name: str, kind: str, help_: str) -> None:
        self.name, self.kind, self.help = name, kind, help_

    def header(self) -> list[str]:
        base = self.name.removesuffix("_total") if self.kind == "counter" else self.name
        return [f"# HELP {base} {self.help}", f"# TYPE {base} {self.kind}"]


class Scalar(Family):
    """A gauge or counter keyed by extra label values."""

    def __init__(self, name: str, kind: str, help_: str, label: str | None = None) -> None:
        super().__init__(name, kind, help_)
        self.label = label
        self.values: dict[str, float] = {}

    def add(self, amount: float = 1.0, key: str = "") -> None:
        self.values[key] = self.values.get(key, 0.0) + amount

    def set(self, value: float, key: str = "") -> None:
        self.values[key] = value

    def render(self, base: list[tuple[str, str]]) -> list[str]:
        lines = self.header()
        for key, value in sorted(self.values.items() or [("", 0.0)]):
            pairs = [*base, (self.label, key)] if self.label else base
            lines.append(f"{self.name}{_labels(pairs)} {_fmt(value)}")
        return lines


class Hist(Family):
    def __init__(self, name: str, help_: str, bounds: tuple[float, ...]) -> None:
        super().__init__(name, "histogram", help_)
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def render(self, base: list[tuple[str, str]]) -> list[str]:
        lines = self.header()
        cumulative = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            cumulative += count
            lines.append(f"{self.name}_bucket{_labels([*base, ('le', _fmt(bound))])} {cumulative}")
        lines.append(f"{self.name}_sum{_labels(base)} {_fmt(self.sum)}")
        lines.append(f"{self.name}_count{_labels(base)} {cumulative}")
        return lines


# vLLM v1's bucket bounds (vllm/v1/metrics/loggers.py), so PromQL written for vLLM works here.
VLLM_TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
             7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
VLLM_ITL = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
            7.5, 10.0, 20.0, 40.0, 80.0)
VLLM_LATENCY = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)


# vLLM's NIXL connector buckets (distributed/kv_transfer/kv_connector/v1/nixl/stats.py)
NIXL_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 5.0)
NIXL_BYTES = tuple(float(2 ** (10 + i)) for i in range(1, 25, 2))


class EngineMetrics:
    """The simulator's /metrics, in vLLM v1's names, types and labels."""

    def __init__(self, model: str, engine_index: int = 0, role: str = "") -> None:
        self.base = [("engine", str(engine_index)), ("model_name", model)]
        self.running = Scalar("vllm:num_requests_running", "gauge",
                              "Number of requests in model execution batches.")
        self.waiting = Scalar("vllm:num_requests_waiting", "gauge",
                              "Number of requests waiting to be processed.")
        self.waiting_by_reason = Scalar(
            "vllm:num_requests_waiting_by_reason", "gauge", "Number of waiting requests by"
            " reason: capacity, or deferred (a KV transfer, the LoRA budget).", label="reason")
        self.kv_usage = Scalar("vllm:kv_cache_usage_perc", "gauge",
                               "KV-cache usage. 1 means 100 percent usage.")
        self.preemptions = Scalar("vllm:num_preemptions_total", "counter",
                                  "Cumulative number of preemption from the engine.")
        self.prompt_tokens = Scalar("vllm:prompt_tokens_total", "counter",
                                    "Number of prefill tokens processed.")
        self.generation_tokens = Scalar("vllm:generation_tokens_total", "counter",
                                        "Number of generation tokens processed.")
        self.prompt_by_source = Scalar("vllm:prompt_tokens_by_source_total", "counter",
                                       "Number of prompt tokens by source.", label="source")
        for source in ("local_compute", "local_cache_hit", "external_kv_transfer"):
            self.prompt_by_source.add(0.0, source)
        self.prefix_queries = Scalar("vllm:prefix_cache_queries_total", "counter",
                                     "Prefix cache queries, in terms of number of queried tokens.")
        self.prefix_hits = Scalar("vllm:prefix_cache_hits_total", "counter",
                                  "Prefix cache hits, in terms of number of cached tokens.")
        self.success = Scalar("vllm:request_success_total", "counter",
                              "Count of successfully processed requests.", label="finished_reason")
        self.ttft = Hist("vllm:time_to_first_token_seconds",
                         "Histogram of time to first token in seconds.", VLLM_TTFT)
        self.itl = Hist("vllm:inter_token_latency_seconds",
                        "Histogram of inter-token latency in seconds.", VLLM_ITL)
        self.e2e = Hist("vllm:e2e_request_latency_seconds",
                        "Histogram of e2e request latency in seconds.", VLLM_LATENCY)
        self.queue = Hist("vllm:request_queue_time_seconds",
                          "Histogram of time spent in WAITING phase for request.", VLLM_LATENCY)
        self.prefill = Hist("vllm:request_prefill_time_seconds",
                            "Histogram of time spent in PREFILL phase for request.", VLLM_LATENCY)
        self.decode = Hist("vllm:request_decode_time_seconds",
                           "Histogram of time spent in DECODE phase for request.", VLLM_LATENCY)
        self.inference = Hist("vllm:request_inference_time_seconds",
                              "Histogram of time spent in RUNNING phase for request.",
                              VLLM_LATENCY)

        if role == "decode":  # the NIXL connector's worker reads the KV: the decode side
            self.nixl_xfer = Hist("vllm:nixl_xfer_time_seconds", "Histogram of transfer"
                                  " duration for NIXL KV Cache transfers.", NIXL_SECONDS)
            self.nixl_bytes = Hist("vllm:nixl_bytes_transferred", "Histogram of bytes"
                                   " transferred per NIXL KV Cache transfers.", NIXL_BYTES)
            self.nixl_failed = Scalar("vllm:nixl_num_failed_transfers_total", "counter",
                                      "Number of failed NIXL KV Cache transfers.")
        if role == "prefill":  # a lease expires where the KV waits: the prefill side
            self.nixl_expired = Scalar("vllm:nixl_num_kv_expired_reqs_total", "counter",
                                       "Number of requests that had their KV expire.")

    def render(self) -> str:
        lines: list[str] = []
        for family in vars(self).values():
            if isinstance(family, Scalar | Hist):
                lines += family.render(self.base)
        return "\n".join(lines) + "\n"


def render_engines(engines: list[EngineMetrics]) -> str:
    """Several data-parallel engines on one /metrics, as vLLM serves them: each family's
    HELP and TYPE once, then its series for every engine (a family must not repeat)."""
    lines: list[str] = []
    for name, family in vars(engines[0]).items():
        if not isinstance(family, Scalar | Hist):
            continue
        for index, metrics in enumerate(engines):
            rendered = getattr(metrics, name).render(metrics.base)
            lines += rendered if index == 0 else rendered[2:]  # [2:]: past HELP and TYPE
    return "\n".join(lines) + "\n"
