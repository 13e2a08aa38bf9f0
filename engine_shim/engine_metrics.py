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


# field -> candidate names, newest first. Counter names are as exposed (with `_total`).
NAME_TABLE: dict[str, tuple[Alias, ...]] = {
    "kv_cache_usage": (
        Alias("vllm", "vllm:kv_cache_usage_perc", "v1 engine, 0.9 and later (0-1)"),
        Alias("vllm", "vllm:gpu_cache_usage_perc", "v0 engine and v1 before 0.9; hidden 0.11"),
        Alias("sglang", "sglang:token_usage", "fraction of KV tokens in use"),
    ),
    "requests_running": (
        Alias("vllm", "vllm:num_requests_running"),
        Alias("sglang", "sglang:num_running_reqs"),
        Alias("tgi", "tgi_batch_current_size", "TGI: batch size, no model label"),
    ),
    "requests_waiting": (
        Alias("vllm", "vllm:num_requests_waiting"),
        Alias("sglang", "sglang:num_queue_reqs"),
        Alias("tgi", "tgi_queue_size"),
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
        Alias("vllm", "vllm:prompt_tokens_total"),
        Alias("sglang", "sglang:prompt_tokens_total"),
        Alias("tgi", "tgi_request_input_length_sum"),
    ),
    "generation_tokens_total": (
        Alias("vllm", "vllm:generation_tokens_total"),
        Alias("sglang", "sglang:generation_tokens_total"),
        Alias("tgi", "tgi_request_generated_tokens_sum"),
    ),
}

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


def snapshots_from_text(text: str, engine: str, now: float) -> list[EngineSnapshot]:
    """One snapshot per model found; values of the same model and name are summed."""
    wanted = {alias.name: (field_name, alias) for field_name, aliases in NAME_TABLE.items()
              for alias in aliases}
    found: dict[str, dict[str, dict[str, float]]] = {}
    for name, labels, value in parse_exposition(text):
        hit = wanted.get(name)
        if hit is None:
            continue
        model = next((labels[k] for k in MODEL_LABELS if k in labels), UNKNOWN)
        by_name = found.setdefault(model, {}).setdefault(hit[0], {})
        by_name[name] = by_name.get(name, 0.0) + value
    snapshots = []
    for model, fields in sorted(found.items()):
        values: dict[str, float] = {}
        matched: list[str] = []
        kinds: set[str] = set()
        for field_name, by_name in fields.items():
            for alias in NAME_TABLE[field_name]:  # newest name wins
                if alias.name in by_name:
                    values[field_name] = by_name[alias.name]
                    matched.append(alias.name)
                    kinds.add(alias.engine_kind)
                    break
        snapshots.append(EngineSnapshot(
            time=now, engine=engine, model=model, up=True,
            engine_kind=kinds.pop() if len(kinds) == 1 else UNKNOWN,
            matched_names=tuple(sorted(matched)), **values))
    return snapshots


class EngineReader:
    """Polls an engine's /metrics every `interval` seconds and hands snapshots to a sink."""

    def __init__(self, url: str, sink: RecordSink, *, engine: str, interval: float = 5.0,
                 clock: Callable[[], float] = time.time, timeout: float = 2.0) -> None:
        self.url = url
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
            snapshots = [EngineSnapshot(time=self.clock(), engine=self.engine, model=m, up=False)
                         for m in sorted(self._models or {UNKNOWN})]
        else:
            snapshots = snapshots_from_text(text, self.engine, self.clock())
            self._models.update(s.model for s in snapshots)
        for snapshot in snapshots:
            self.sink.record_snapshot(snapshot)
        return snapshots

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            await self.poll_once(session)
            await asyncio.sleep(self.interval)
