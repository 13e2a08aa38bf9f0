"""Read an engine's Prometheus /metrics into EngineSnapshots, across engines and versions.

The name table maps each snapshot field to the names engines have used for it, newest first.
vLLM renamed `gpu_cache_usage_perc` to `kv_cache_usage_perc` (v1 engine, 0.9+) and hid old
names from 0.11; dashboards that query one name show "No Data" on the other, so we read all.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp

from engine_shim.records import UNKNOWN, EngineSnapshot, RecordSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alias:
    engine_kind: str
    name: str
    note: str = ""
    labels: tuple[tuple[str, str], ...] = ()  # only series with these label values
    scale: float = 1.0  # to the snapshot's unit (SGLang's milliseconds to seconds)


# field -> candidate names, newest first. Counter names are as exposed (with `_total`).
NAME_TABLE: dict[str, tuple[Alias, ...]] = {
    "kv_cache_usage": (
        Alias("vllm", "vllm:kv_cache_usage_perc", "v1 engine, 0.9 and later (0-1)"),
        Alias("vllm", "vllm:gpu_cache_usage_perc", "v0 engine and v1 before 0.9; removed"),
        Alias("sglang", "sglang:token_usage", "fraction of KV tokens in use"),
        Alias("trtllm", "trtllm_kv_cache_utilization", "TensorRT-LLM (Dynamo): 0-1"),
        Alias("dynamo", "dynamo_component_kvstats_gpu_cache_usage_percent", "Dynamo worker:"
              " a fraction 0-1 despite the name (its help text); no model label"),
    ),
    "requests_running": (
        Alias("vllm", "vllm:num_requests_running"),
        Alias("sglang", "sglang:num_running_reqs"),
        Alias("trtllm", "trtllm_num_requests_running"),
        Alias("dynamo", "dynamo_component_inflight_requests", "Dynamo worker: requests its"
              " generate handler serves", labels=(("dynamo_endpoint", "generate"),)),
        Alias("tgi", "tgi_batch_current_size", "TGI: batch size, no model label"),
    ),
    "requests_waiting": (
        Alias("vllm", "vllm:num_requests_waiting", "includes requests deferred for a KV"
              " transfer or the LoRA budget (reason=deferred)"),
        Alias("sglang", "sglang:num_queue_reqs"),
        Alias("trtllm", "trtllm_num_requests_waiting"),
        Alias("dynamo", "dynamo_frontend_queued_requests", "Dynamo frontend: its HTTP queue"
              " (its inflight_requests include these, so they are not read as running)"),
        Alias("tgi", "tgi_queue_size"),
    ),
    "requests_waiting_deferred": (
        Alias("vllm", "vllm:num_requests_waiting_by_reason", "waiting on a KV transfer, the"
              " LoRA budget or a blocked status, not on capacity", (("reason", "deferred"),)),
        Alias("sglang", "sglang:num_decode_transfer_queue_reqs", "decode side: waiting for"
              " its KV to arrive"),
    ),
    "preemptions_total": (
        Alias("vllm", "vllm:num_preemptions_total", "counter since v0.4"),
        Alias("vllm", "vllm:num_preemptions", "exposed without _total by some builds"),
    ),
    "prefix_cache_queries_total": (
        Alias("vllm", "vllm:prefix_cache_queries_total", "v1 engine, tokens queried"),
        Alias("vllm", "vllm:gpu_prefix_cache_queries_total", "v1 before 0.9"),
    ),
    "prefix_cache_hits_total": (
        Alias("vllm", "vllm:prefix_cache_hits_total", "v1 engine, tokens hit"),
        Alias("vllm", "vllm:gpu_prefix_cache_hits_total", "v1 before 0.9"),
    ),
    "prompt_tokens_total": (
        Alias("vllm", "vllm:prompt_tokens_total", "with P/D the prefill and the decode pod"
              " both count each prompt: cost and tokens use the decode side's requests"),
        Alias("sglang", "sglang:prompt_tokens_total"),
        Alias("tgi", "tgi_request_input_length_sum"),
    ),
    "generation_tokens_total": (
        Alias("vllm", "vllm:generation_tokens_total"),
        Alias("sglang", "sglang:generation_tokens_total"),
        Alias("tgi", "tgi_request_generated_tokens_sum"),
    ),
    # where prompt tokens came from (vLLM 0.11+): computed + cache hit + transferred = total
    "prompt_tokens_computed_total": (
        Alias("vllm", "vllm:prompt_tokens_by_source_total", "prefilled here",
              (("source", "local_compute"),)),
    ),
    "prompt_tokens_cache_hit_total": (
        Alias("vllm", "vllm:prompt_tokens_by_source_total", "from this engine's prefix cache",
              (("source", "local_cache_hit"),)),
    ),
    "prompt_tokens_transferred_total": (
        Alias("vllm", "vllm:prompt_tokens_by_source_total", "KV received from another"
              " instance (P/D) or an external cache", (("source", "external_kv_transfer"),)),
    ),
    # KV-cache transfer between prefill and decode (NIXL connector; SGLang's P/D)
    "kv_transfer_seconds_total": (
        Alias("vllm", "vllm:nixl_xfer_time_seconds_sum", "NIXL connector"),
        Alias("sglang", "sglang:kv_transfer_latency_ms_sum", "prefill side, ms", scale=0.001),
    ),
    "kv_transfers_total": (
        Alias("vllm", "vllm:nixl_xfer_time_seconds_count", "NIXL connector"),
        Alias("sglang", "sglang:kv_transfer_latency_ms_count", "prefill side"),
    ),
    "kv_transfer_bytes_total": (
        Alias("vllm", "vllm:nixl_bytes_transferred_sum", "NIXL connector"),
        Alias("sglang", "sglang:kv_transfer_total_mb_sum", "MB", scale=1e6),
    ),
    "kv_transfer_failures_total": (
        Alias("vllm", "vllm:nixl_num_failed_transfers_total", "NIXL: includes handshake and"
              " notification failures"),
        Alias("sglang", "sglang:num_transfer_failed_reqs_total"),
    ),
    "kv_expired_total": (
        Alias("vllm", "vllm:nixl_num_kv_expired_reqs_total", "prefill side: the decode pod"
              " never fetched the KV before its lease expired"),
    ),
}

# Ratios are averaged over an engine's data-parallel engines (vLLM's `engine`, SGLang's
# `dp_rank`/`tp_rank` labels) and their maximum kept; everything else is summed.
MEAN_FIELDS = ("kv_cache_usage",)
# Present only where a KV connector or P/D is configured (absent from a plain vLLM server).
DISAGGREGATION_FIELDS = ("kv_transfer_seconds_total", "kv_transfers_total",
                         "kv_transfer_bytes_total", "kv_transfer_failures_total",
                         "kv_expired_total")
ENGINE_INDEX_LABELS = ("engine", "dp_rank")  # a data-parallel engine (TP ranks are one)
ENGINE_COUNTED = ("kv_cache_usage", "requests_running")
ROLE_LABELS = ("engine_type",)  # SGLang's prefill|decode; vLLM has none: LLMKPI_ROLE
ROLES = ("prefill", "decode")  # TensorRT-LLM's engine_type="trtllm" names no role

# Renamed or retired series (old name -> (new name, vLLM version of the change)). The reader
# above polls gauges and counters; this table is for queries over histograms (dashboards).
RENAMED: dict[str, tuple[str, str]] = {
    "vllm:gpu_cache_usage_perc": ("vllm:kv_cache_usage_perc", "0.9"),
    "vllm:gpu_prefix_cache_queries_total": ("vllm:prefix_cache_queries_total", "0.9"),
    "vllm:gpu_prefix_cache_hits_total": ("vllm:prefix_cache_hits_total", "0.9"),
    "vllm:time_per_output_token_seconds": ("vllm:inter_token_latency_seconds", "0.11"),
}

MODEL_LABELS = ("model_name", "model")

_SAMPLE_RE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+\S+)?$"
)
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Sample = tuple[str, dict[str, str], float]


def parse_exposition(text: str) -> Iterator[Sample]:
    """Samples of the Prometheus text format (and OpenMetrics); bad lines are skipped."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if " # " in line:  # OpenMetrics exemplar
            line = line.split(" # ", 1)[0]
        match = _SAMPLE_RE.match(line)
        if match is None:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL_RE.findall(match["labels"] or "")}
        yield match["name"], labels, value


def _unescape(value: str) -> str:
    return value.replace(r"\"", '"').replace(r"\n", "\n").replace("\\\\", "\\")


Found = dict[str, dict[str, dict[str, list[float]]]]  # model -> field -> name -> series


def snapshots_from_text(text: str, engine: str, now: float,
                        role: str = "") -> list[EngineSnapshot]:
    """One snapshot per model found. Counts of the same model and name are summed over its
    series (data-parallel engines); ratios are averaged, and their maximum kept. `role` is
    the pod's (prefill, decode; LLMKPI_ROLE), unless the series say it (SGLang)."""
    found, engines, roles = _collect(text)
    _fold_unlabelled(found)
    snapshots = []
    for model, fields in sorted(found.items()):
        values, matched, kinds = _combine(fields)
        snapshots.append(EngineSnapshot(
            time=now, engine=engine, model=model, up=True,
            engine_kind=kinds.pop() if len(kinds) == 1 else UNKNOWN,
            matched_names=tuple(sorted(set(matched))), role=roles.get(model, role),
            engines=len(engines.get(model, ())) or 1, **values))
    return snapshots


_WANTED: dict[str, list[tuple[str, Alias]]] = {}
for _field, _aliases in NAME_TABLE.items():
    for _alias in _aliases:
        _WANTED.setdefault(_alias.name, []).append((_field, _alias))


def _collect(text: str) -> tuple[Found, dict[str, set[str]], dict[str, str]]:
    """Every series of the table's names: values per model and field, the data-parallel
    engines seen per model, and the role a series states."""
    found: Found = {}
    engines: dict[str, set[str]] = {}
    roles: dict[str, str] = {}
    for name, labels, value in parse_exposition(text):
        for field_name, alias in _WANTED.get(name, ()):
            if any(labels.get(k) != v for k, v in alias.labels):
                continue
            model = next((labels[k] for k in MODEL_LABELS if k in labels), UNKNOWN)
            by_name = found.setdefault(model, {}).setdefault(field_name, {})
            by_name.setdefault(name, []).append(value * alias.scale)
            if field_name in ENGINE_COUNTED:  # every engine reports these, once per DP rank
                engines.setdefault(model, set()).add(
                    next((labels[k] for k in ENGINE_INDEX_LABELS if k in labels), ""))
            said = next((labels[k] for k in ROLE_LABELS if labels.get(k) in ROLES), "")
            if said:
                roles[model] = said
    return found, engines, roles


def _fold_unlabelled(found: Found) -> None:
    """Series without a model label (Dynamo's kvstats, TGI's) belong to the only model the
    text names: no second, "unknown" snapshot beside it. With several models they stay
    apart (which model they measure cannot be known)."""
    named = [model for model in found if model != UNKNOWN]
    if UNKNOWN not in found or len(named) != 1:
        return
    into = found[named[0]]
    for field_name, by_name in found.pop(UNKNOWN).items():
        for name, series in by_name.items():
            into.setdefault(field_name, {}).setdefault(name, series)


def _combine(fields: dict[str, dict[str, list[float]]]
             ) -> tuple[dict[str, float], list[str], set[str]]:
    """Per field the newest name's series, summed (counts) or averaged with their maximum
    (ratios)."""
    values: dict[str, float] = {}
    matched: list[str] = []
    kinds: set[str] = set()
    for field_name, by_name in fields.items():
        for alias in NAME_TABLE[field_name]:  # newest name wins
            series = by_name.get(alias.name)
            if not series:
                continue
            if field_name in MEAN_FIELDS:
                values[field_name] = sum(series) / len(series)
                values[field_name + "_max"] = max(series)
            else:
                values[field_name] = sum(series)
            matched.append(alias.name)
            kinds.add(alias.engine_kind)
            break
    return values, matched, kinds


class EngineReader:
    """Polls an engine's /metrics every `interval` seconds and hands snapshots to a sink."""

    def __init__(self, url: str, sink: RecordSink, *, engine: str, interval: float = 5.0,
                 clock: Callable[[], float] = time.time, timeout: float = 2.0,
                 role: str = "") -> None:
        self.url = url
        self.role = role  # prefill | decode, from the pod (LLMKPI_ROLE); "" when both
        self.sink = sink
        self.engine = engine
        self.interval = interval
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.polls = 0
        self.failures = 0
        self._models: set[str] = set()

    async def poll_once(self, session: aiohttp.ClientSession) -> list[EngineSnapshot]:
        self.polls += 1
        try:
            async with session.get(self.url, timeout=self.timeout) as resp:
                resp.raise_for_status()
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failures += 1
            log.debug("engine metrics poll of %s failed: %s", self.url, exc)
            snapshots = [EngineSnapshot(time=self.clock(), engine=self.engine, model=m, up=False,
                                        role=self.role)
                         for m in sorted(self._models or {UNKNOWN})]
        else:
            snapshots = snapshots_from_text(text, self.engine, self.clock(), self.role)
            self._models.update(s.model for s in snapshots)
        for snapshot in snapshots:
            self.sink.record_snapshot(snapshot)
        return snapshots

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            await self.poll_once(session)
            await asyncio.sleep(self.interval)
