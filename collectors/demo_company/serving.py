"""The demo fleet's GPU inventory and bill, and its engine readings every 15 minutes (the
requests themselves are drawn in collectors/demo_company/traffic.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from collectors.demo_company.timeline import Timeline, add_months, at
from collectors.demo_company.traffic import Pod

READING_MINUTES = 15
SLOT_US = READING_MINUTES * 60 * 1_000_000


def gpu_rows(timeline: Timeline, pods: list[Pod]) -> list[dict[str, Any]]:
    rows = []
    for pod in pods:
        start = at(timeline.months[pod.from_month])
        if pod.price_cut is None:
            rows.append({"pod": pod.name, "gpu_type": pod.gpu_type, "gpu_count": 1,
                         "dollars_per_gpu_hour": pod.dollars_per_gpu_hour,
                         "valid_from": start, "valid_to": None})
            continue
        cut = at(timeline.months[pod.price_cut[0]])
        rows.append({"pod": pod.name, "gpu_type": pod.gpu_type, "gpu_count": 1,
                     "dollars_per_gpu_hour": pod.dollars_per_gpu_hour, "valid_from": start,
                     "valid_to": cut})
        rows.append({"pod": pod.name, "gpu_type": pod.gpu_type, "gpu_count": 1,
                     "dollars_per_gpu_hour": pod.price_cut[1], "valid_from": cut,
                     "valid_to": None})
    return rows


def gpu_cost(timeline: Timeline, pods: list[Pod], month: int) -> float:
    hours = (at(add_months(timeline.months[month], 1)) - at(timeline.months[month])
             ).total_seconds() / 3600
    total = 0.0
    for pod in pods:
        if month < pod.from_month:
            continue
        price = pod.dollars_per_gpu_hour
        if pod.price_cut is not None and month >= pod.price_cut[0]:
            price = pod.price_cut[1]
        total += price * hours
    return total


@dataclass
class Readings:
    """Engine gauges every 15 minutes per pod, from the requests drawn for a span (each
    standing for `thin`): the mean number in flight, the KV blocks they hold, and the
    prefix-cache counters (prompt and cached tokens), which carry over from span to span."""

    timeline: Timeline
    pods: list[Pod]
    queried: dict[str, float] = field(default_factory=dict)
    hits: dict[str, float] = field(default_factory=dict)
    preempted: dict[str, float] = field(default_factory=dict)

    def span(self, frame: pd.DataFrame, thin: int, start_us: int, hours: int
             ) -> list[dict[str, Any]]:
        slots = hours * 4
        outage = self.timeline.outage
        down_from = int(pd.Timestamp(outage.start).value // 1000)
        down_to = int(pd.Timestamp(outage.end).value // 1000)
        month = self.timeline.month_index(pd.Timestamp(start_us, unit="us", tz="UTC"))
        rows: list[dict[str, Any]] = []
        for pod in self.pods:
            if month < pod.from_month:
                continue
            mine = frame[frame["pod"] == pod.name]
            slot = np.clip((mine["arrival_us"].to_numpy() - start_us) // SLOT_US, 0, slots - 1)

            def per_slot(values: np.ndarray, s: np.ndarray = slot) -> np.ndarray:
                return np.bincount(s, weights=np.nan_to_num(values), minlength=slots) * thin

            running = per_slot(mine["e2e_latency"].to_numpy()) / (SLOT_US / 1e6)
            context = per_slot((mine["prompt_tokens"] + mine["output_tokens"]).to_numpy())
            prompts = per_slot(mine["prompt_tokens"].to_numpy())
            cached = per_slot(mine["cached_prompt_tokens"].to_numpy())
            count = per_slot(np.ones(len(mine)))
            capacity = pod.timing.num_blocks * pod.timing.block_size
            for i in range(slots):
                taken = start_us + i * SLOT_US
                down = down_from <= taken < down_to
                mean_context = context[i] / count[i] if count[i] else 0.0
                kv = min(1.0, running[i] * mean_context / capacity)
                self.queried[pod.name] = self.queried.get(pod.name, 0.0) + prompts[i]
                self.hits[pod.name] = self.hits.get(pod.name, 0.0) + cached[i]
                if kv > 0.9:
                    self.preempted[pod.name] = self.preempted.get(pod.name, 0.0) + 1
                rows.append({
                    "taken": pd.Timestamp(taken, unit="us", tz="UTC").to_pydatetime(),
                    "engine": f"{pod.name}/0", "model": pod.timing.model, "pod": pod.name,
                    "up": not down, "kv_cache_usage": None if down else round(kv, 4),
                    "requests_running": None if down else round(float(running[i]), 3),
                    "requests_waiting": None if down else 0.0,
                    "preemptions_total": self.preempted.get(pod.name, 0.0),
                    "prefix_cache_queries_total": round(self.queried[pod.name]),
                    "prefix_cache_hits_total": round(self.hits[pod.name])})
        return rows
