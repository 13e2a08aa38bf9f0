"""The demo fleet: GPU inventory, one ledger row per request, engine readings every 15 min.

Timings come from the simulator's engine profiles (handed in, since collectors may not
import the simulator): prefill and decode step times at the hour's batch size (Little's law
from the arrival rate), so TTFT and ITL rise with load as the live simulator's do. During
the outage every request fails with 503 and the engines read as down.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from collectors.demo_company.timeline import Timeline, add_months, at

READING_MINUTES = 15
TIMED = ("time_to_first_token", "mean_inter_token_latency", "queue_time", "prefill_time",
         "decode_time", "prompt_tokens", "output_tokens", "cached_prompt_tokens")
FEATURES = {  # name: (share, prompt median, output median, cached share of the prompt)
    "chat": (0.45, 900, 220, 0.5),
    "summarize": (0.20, 3000, 160, 0.1),
    "search": (0.20, 400, 60, 0.3),
    "agent": (0.15, 2500, 700, 0.6),
}


class Timing(Protocol):
    """What the generator needs of a simulator profile (engine_shim.simulator.profiles)."""

    @property
    def model(self) -> str: ...
    @property
    def num_blocks(self) -> int: ...
    @property
    def block_size(self) -> int: ...

    def step_time(self, prefill_tokens: int, decode_seqs: int,
                  decode_kv_tokens: int) -> float: ...


@dataclass(frozen=True)
class Pod:
    name: str
    gpu_type: str
    dollars_per_gpu_hour: float
    timing: Timing
    from_month: int  # index of the first month it serves
    price_cut: tuple[int, float] | None = None  # (month index, new price)


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


def hourly_rate(base_per_day: float, growth: float, hour_of_day: int, weekday: int) -> float:
    """Requests per hour: a business-hours hump (UTC, EU+US) and quieter weekends."""
    daily = 0.35 + 0.65 * max(0.0, math.sin(math.pi * (hour_of_day - 6) / 16))
    weekend = 0.45 if weekday >= 5 else 1.0
    return base_per_day * growth * daily * weekend / 10.0


def lognormal(rng: random.Random, median: float, sigma: float = 0.6) -> int:
    return max(1, int(rng.lognormvariate(math.log(median), sigma)))


class Fleet:
    def __init__(self, timeline: Timeline, pods: list[Pod], base_per_day: float) -> None:
        self.timeline, self.pods, self.base = timeline, pods, base_per_day
        self.rng = random.Random(timeline.seed * 7919 + 11)
        self.features = list(FEATURES)
        self.shares = [FEATURES[f][0] for f in self.features]
        self.tenants = timeline.tenants
        self.tenant_weights = [timeline.tenant_weight[t] for t in self.tenants]
        # seconds of requests in flight per (pod, 15-minute slot), filled by requests()
        self.in_flight: dict[tuple[str, int], float] = {}

    def _pods_at(self, month: int) -> list[Pod]:
        return [p for p in self.pods if month >= p.from_month]

    def requests(self) -> Iterator[dict[str, Any]]:
        tl, rng = self.timeline, self.rng
        hour = tl.start
        serial = 0
        while hour < tl.end:
            month = tl.month_index(hour)
            pods = self._pods_at(month)
            rate = hourly_rate(self.base, tl.growth[month], hour.hour, hour.weekday())
            per_pod = rate / len(pods)
            for _ in range(self._poisson(rate)):
                serial += 1
                pod = pods[serial % len(pods)]
                arrival = hour + timedelta(seconds=rng.random() * 3600)
                row = self._request(serial, pod, arrival, per_pod)
                self._occupy(pod.name, row["arrival"], row["e2e_latency"])
                yield row
            hour += timedelta(hours=1)

    def _slot(self, moment: Any) -> int:
        return int((moment - self.timeline.start).total_seconds() // (READING_MINUTES * 60))

    def _occupy(self, pod: str, arrival: Any, seconds: float) -> None:
        slot_seconds = READING_MINUTES * 60.0
        start = (arrival - self.timeline.start).total_seconds()
        end = start + seconds
        while start < end:
            slot = int(start // slot_seconds)
            part = min(end, (slot + 1) * slot_seconds) - start
            key = (pod, slot)
            self.in_flight[key] = self.in_flight.get(key, 0.0) + part
            start += part

    def _poisson(self, mean: float) -> int:
        # Normal approximation above 30 keeps 12 months of hours fast.
        if mean > 30:
            return max(0, round(self.rng.gauss(mean, math.sqrt(mean))))
        limit, k, p = math.exp(-mean), 0, 1.0
        while True:
            p *= self.rng.random()
            if p <= limit:
                return k
            k += 1

    def _request(self, serial: int, pod: Pod, arrival: Any, per_pod_rate: float
                 ) -> dict[str, Any]:
        rng, timing = self.rng, pod.timing
        feature = rng.choices(self.features, self.shares)[0]
        _share, prompt_median, output_median, cached_share = FEATURES[feature]
        tenant = rng.choices(self.tenants, self.tenant_weights)[0]
        prompt = lognormal(rng, prompt_median)
        output = lognormal(rng, output_median)
        cached = int(prompt * cached_share * rng.random()) // timing.block_size * \
            timing.block_size
        base = {"source": "demo", "request_id": f"demo-{serial:08d}", "tenant": tenant,
                "model": timing.model, "feature": feature, "endpoint": "chat",
                "pod": pod.name, "gpu": pod.gpu_type, "arrival": arrival}
        if self.timeline.outage.start <= arrival < self.timeline.outage.end:
            return base | dict.fromkeys(TIMED) | {
                "finish": arrival + timedelta(seconds=0.02), "outcome": "error",
                "http_status": 503, "e2e_latency": 0.02, "finish_reason": None}
        # Little's law: requests in flight on this pod at this hour's rate
        batch = max(1, round(per_pod_rate / 3600 * 12.0 * (1 + rng.random())))
        step = timing.step_time(0, batch, batch * (prompt + output // 2))
        prefill = timing.step_time(prompt - cached, 0, 0)
        queue = rng.expovariate(1 / 0.02) * batch
        ttft = queue + prefill + step
        decode = step * (output - 1)
        e2e = ttft + decode
        return base | {
            "finish": arrival + timedelta(seconds=e2e), "outcome": "ok", "http_status": 200,
            "time_to_first_token": ttft, "e2e_latency": e2e, "mean_inter_token_latency": step,
            "queue_time": queue, "prefill_time": prefill, "decode_time": decode,
            "prompt_tokens": prompt, "output_tokens": output, "cached_prompt_tokens": cached,
            "finish_reason": "stop" if rng.random() < 0.92 else "length"}

    def readings(self) -> Iterator[dict[str, Any]]:
        """Engine gauges every 15 minutes per pod: the mean number of the ledger's requests in
        flight in that slot (run requests() first), and the KV blocks they would hold."""
        tl = self.timeline
        rng = random.Random(tl.seed * 31 + 5)
        moment = tl.start
        preempted: dict[str, float] = {}
        queried: dict[str, float] = {}
        slot_seconds = READING_MINUTES * 60.0
        while moment < tl.end:
            month = tl.month_index(moment)
            down = tl.outage.start <= moment < tl.outage.end
            for pod in self._pods_at(month):
                timing = pod.timing
                running = self.in_flight.get((pod.name, self._slot(moment)), 0.0) / slot_seconds
                capacity = timing.num_blocks * timing.block_size
                kv = min(1.0, running * 1400 / capacity)
                if kv > 0.9:
                    preempted[pod.name] = preempted.get(pod.name, 0.0) + rng.randint(0, 3)
                queried[pod.name] = queried.get(pod.name, 0.0) + running * 900 * 60
                yield {"taken": moment, "engine": f"{pod.name}/0", "model": timing.model,
                       "pod": pod.name, "up": not down, "kv_cache_usage": None if down else kv,
                       "requests_running": None if down else round(running, 3),
                       "requests_waiting": None if down else 0.0,
                       "preemptions_total": preempted.get(pod.name, 0.0),
                       "prefix_cache_queries_total": round(queried[pod.name]),
                       "prefix_cache_hits_total": round(queried[pod.name] * 0.35)}
            moment += timedelta(minutes=READING_MINUTES)
