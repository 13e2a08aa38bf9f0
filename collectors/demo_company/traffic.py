"""The demo fleet's requests, one day at a time, as columns (a year of a real fleet is tens of
millions of requests: they are drawn with numpy, never as Python objects one by one).

Each pod serves some features. A feature's requests arrive in clusters — an agent fans out
parallel calls, a chat turn is one call — at a rate that follows the working day (EU and US
hours, UTC; quieter weekends) and the month's growth. Timings come from the simulator's
engine profiles: a decode step at the hour's expected batch (Little's law from the arrival
rate), prefill per uncached prompt token, and a cluster's members wait for each other's
prefill. The outage fails every request with 503; for RECOVERY after it the engines come
back with a cold prefix cache and a backlog, so first tokens are late (the TTFT budget burns).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

import numpy as np
import pandas as pd

from collectors import usage
from collectors.demo_company.timeline import Timeline

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
RECOVERY = timedelta(hours=3)
BACKLOG_SECONDS = 4.0  # queueing at the moment serving comes back, falling to 0 over RECOVERY
SERVER_ERROR_RATE = 0.0001  # the odd 500 outside the outage
THROTTLED_RATE = 0.002  # 429s on the tenant that runs into its rate limit
MAX_OUTPUT = 2048
IN_FLIGHT_SECONDS = 4.0  # a request's typical time in the engine, for Little's law


@dataclass(frozen=True)
class Feature:
    name: str
    share: float  # of the fleet's requests
    prompt: int  # median prompt tokens
    output: int  # median output tokens
    cached: float  # share of the prompt a warm prefix cache serves, at most
    fanout: float  # mean requests per arrival cluster


FEATURES = (Feature("chat", 0.38, 1500, 220, 0.5, 1.0),
            Feature("summarize", 0.16, 3500, 260, 0.1, 1.0),
            Feature("agent", 0.26, 6000, 300, 0.85, 3.0),
            Feature("search", 0.20, 2000, 120, 0.3, 1.5))


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
    features: tuple[str, ...] = ()  # what the gateway routes here (empty: everything else)


def rhythm(hour_of_day: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Relative load by hour (UTC): a working-day hump from 06:00 to 22:00 over a night floor,
    weekends at 55 %. Its mean over a week is 1, so base × rhythm is requests per day / 24."""
    daily = 0.25 + 0.75 * np.maximum(0.0, np.sin(np.pi * (hour_of_day - 6) / 16))
    raw = daily * np.where(weekday >= 5, 0.55, 1.0)
    return np.asarray(raw / WEEK_MEAN, dtype="float64")


def _week_mean() -> float:
    hours = np.arange(168)
    daily = 0.25 + 0.75 * np.maximum(0.0, np.sin(np.pi * (hours % 24 - 6) / 16))
    return float(np.mean(daily * np.where(hours // 24 >= 5, 0.55, 1.0)))


WEEK_MEAN = _week_mean()


def tenant_features(index: int) -> tuple[str, ...]:
    """Which features a tenant's product calls: the biggest calls every one, each other
    tenant all but one (so tenants cost differently per request)."""
    names = tuple(f.name for f in FEATURES)
    return names if index == 0 else tuple(n for i, n in enumerate(names)
                                          if i != index % len(names))


def lognormal_mean(median: float, sigma: float) -> float:
    return median * math.exp(sigma * sigma / 2)


PROMPT_SIGMA, OUTPUT_SIGMA = 0.35, 0.6
MAX_CONTEXT = 8192  # the profiles' max_model_len: prompt + output


class Traffic:
    """Draws a day of requests for the whole fleet; the same seed gives the same days."""

    def __init__(self, timeline: Timeline, pods: list[Pod], base_per_day: float) -> None:
        self.timeline, self.pods, self.base = timeline, pods, base_per_day
        self.tenants = np.asarray(timeline.tenants, dtype=object)
        self.mix = {f.name: self._tenant_weights(f.name) for f in FEATURES}

    def _tenant_weights(self, feature: str) -> np.ndarray:
        weights = np.asarray([self.timeline.tenant_weight[t] if feature in tenant_features(i)
                              else 0.0 for i, t in enumerate(self.timeline.tenants)])
        return np.asarray(weights / weights.sum(), dtype="float64")

    def routes(self, month: int) -> dict[str, list[Pod]]:
        """feature -> the pods in service that take it (a pod with no list takes the rest)."""
        live = [p for p in self.pods if month >= p.from_month]
        out: dict[str, list[Pod]] = {}
        for feature in FEATURES:
            named = [p for p in live if feature.name in p.features]
            out[feature.name] = named or [p for p in live if not p.features] or live[:1]
        return out

    def expected_requests(self, month: int, tenant: str) -> float:
        """The mean number of requests a tenant sends in a month (what contracts are priced
        on, before any request is drawn)."""
        start = self.timeline.months[month]
        hours = pd.date_range(pd.Timestamp(start), periods=24 * _days(start), freq="h")
        load = rhythm(hours.hour.to_numpy(), hours.day_of_week.to_numpy()).sum() / 24
        index = self.timeline.tenants.index(tenant)
        return float(self.base * self.timeline.growth[month] * load * sum(
            f.share * self.mix[f.name][index] for f in FEATURES))

    def expected_tokens(self, month: int, tenant: str) -> float:
        index = self.timeline.tenants.index(tenant)
        per_request = sum(f.share * self.mix[f.name][index] * (
            lognormal_mean(f.prompt, PROMPT_SIGMA) + lognormal_mean(f.output, OUTPUT_SIGMA))
            for f in FEATURES) / sum(f.share * self.mix[f.name][index] for f in FEATURES)
        return float(self.expected_requests(month, tenant) * per_request)

    def span(self, start: datetime, hours: int, thin: int = 1) -> pd.DataFrame:
        """Every request arriving in the `hours` from `start` (whole days from a UTC midnight,
        inside one month),
        sorted by pod and arrival; with `thin`, one cluster in `thin` (timings still at the
        full load). The same span gives the same requests."""
        days = [self._day(start + timedelta(days=d), thin) for d in range(hours // 24)]
        frame = pd.concat(days, ignore_index=True)
        return frame.sort_values(["pod", "arrival_us"], kind="stable", ignore_index=True)

    def _day(self, start: datetime, thin: int) -> pd.DataFrame:
        """One day's requests (the same whatever span asks for it)."""
        tl = self.timeline
        month = tl.month_index(start)
        ordinal = (start - tl.start).days
        rng = np.random.default_rng([tl.seed, ordinal, thin])
        stamps = pd.date_range(pd.Timestamp(start), periods=24, freq="h")
        per_hour = self.base * tl.growth[month] * rhythm(
            stamps.hour.to_numpy(), stamps.day_of_week.to_numpy()) / 24
        routes = self.routes(month)
        pod_rate = {p.name: sum(per_hour * f.share / len(routes[f.name]) for f in FEATURES
                                if p in routes[f.name]) for p in self.pods}
        frames = []
        for feature in FEATURES:
            pods = routes[feature.name]
            for pod in pods:
                clusters = per_hour * feature.share / feature.fanout / len(pods) / thin
                frames.append(self._draw(rng, start, feature, pod, clusters,
                                         np.asarray(pod_rate[pod.name])))
        frame = pd.concat(frames, ignore_index=True)
        if thin == 1:
            frame["request_id"] = [f"demo-{ordinal:05d}-{i:07d}" for i in range(len(frame))]
        return frame

    def _draw(self, rng: np.random.Generator, day: datetime, feature: Feature, pod: Pod,
              clusters_per_hour: np.ndarray, pod_rate: np.ndarray) -> pd.DataFrame:
        timing = pod.timing
        counts = rng.poisson(clusters_per_hour)
        hour = np.repeat(np.arange(len(counts)), counts)
        size = 1 + rng.poisson(max(feature.fanout - 1.0, 0.0), len(hour))
        member = np.repeat(np.arange(len(hour)), size)
        first = np.cumsum(size) - size
        rank = np.arange(len(member)) - np.repeat(first, size)
        day_us = int(pd.Timestamp(day).value // 1000)
        start_us = day_us + hour * HOUR_US + (rng.random(len(hour)) * HOUR_US).astype(np.int64)
        arrival_us = np.repeat(start_us, size) + rank * 40_000  # members 40 ms apart
        n = len(member)
        tenant = np.repeat(rng.choice(self.tenants, len(hour), p=self.mix[feature.name]), size)
        output = np.clip(rng.lognormal(math.log(feature.output), OUTPUT_SIGMA, n), 1,
                         MAX_OUTPUT).astype(np.int64)
        prompt = np.clip(rng.lognormal(math.log(feature.prompt), PROMPT_SIGMA, n), 1,
                         MAX_CONTEXT - output).astype(np.int64)
        outage = self.timeline.outage
        since = (arrival_us - int(pd.Timestamp(outage.end).value // 1000)) / 1e6
        cold = (since >= 0) & (since < RECOVERY.total_seconds())
        warm_share = feature.cached * (0.6 + 0.4 * rng.random(n)) * ~cold
        cached = (prompt * warm_share).astype(np.int64) // timing.block_size \
            * timing.block_size
        # the hour's decode step at its expected batch (Little's law on this pod's load)
        in_flight = (pod_rate / 3600 * IN_FLIGHT_SECONDS)[hour[member]]
        batch = np.maximum(1, np.rint(in_flight * (1 + rng.random(n)))).astype(np.int64)
        context = feature.prompt + feature.output // 2
        step = np.asarray([timing.step_time(0, int(b), int(b) * context) for b in range(1, 65)]
                          )[np.minimum(batch, 64) - 1] * rng.lognormal(0, 0.08, n)
        slope = (timing.step_time(1001, 0, 0) - timing.step_time(1, 0, 0)) / 1000
        fixed = timing.step_time(1, 0, 0) - slope
        prefill = fixed + slope * (prompt - cached)
        # chunked prefill: a member shares steps with the ones that arrived before it
        waited = np.cumsum(prefill) - prefill - np.repeat(
            (np.cumsum(prefill) - prefill)[first], size)
        queue = 0.5 * waited + rng.exponential(0.004, n) * batch + np.where(
            cold, BACKLOG_SECONDS * (1 - since / RECOVERY.total_seconds()), 0.0)
        ttft = queue + prefill + step
        decode = step * (output - 1)
        e2e = ttft + decode
        status = np.full(n, 200)
        down = (arrival_us >= int(pd.Timestamp(outage.start).value // 1000)) & (since < 0)
        status[rng.random(n) < SERVER_ERROR_RATE] = 500
        limited = (tenant == self.timeline.tenants[1]) & (rng.random(n) < THROTTLED_RATE)
        status[limited] = 429
        status[down] = 503
        ok = status == 200
        outcome = np.where(ok, "ok", np.where(status == 429, "rejected", "error"))
        short = np.where(status == 503, 0.02, np.where(status == 429, 0.003, 0.4))
        e2e = np.where(ok, e2e, short)
        finish_us = arrival_us + np.rint(e2e * 1e6).astype(np.int64)

        def timed(values: np.ndarray) -> np.ndarray:
            return np.where(ok, values, np.nan)

        return pd.DataFrame({
            "source": "demo", "tenant": tenant, "model": timing.model,
            "feature": feature.name, "endpoint": "chat", "pod": pod.name,
            "gpu": pod.gpu_type, "arrival_us": arrival_us, "finish_us": finish_us,
            "outcome": outcome, "http_status": status,
            "time_to_first_token": timed(ttft), "e2e_latency": e2e,
            "mean_inter_token_latency": timed(step), "queue_time": timed(queue),
            "prefill_time": timed(prefill), "decode_time": timed(decode),
            "prompt_tokens": np.where(status == 503, np.nan, prompt),
            "output_tokens": timed(output.astype("float64")),
            "cached_prompt_tokens": timed(cached.astype("float64")),
            "finish_reason": pd.Series(np.where(output >= MAX_OUTPUT, "length", "stop"),
                                       dtype=object).where(ok, None),
            "itl_counts": None, "cluster": np.repeat(start_us, size)})


def _days(month_start: date) -> int:
    start = pd.Timestamp(month_start)
    return int(((start + pd.offsets.MonthBegin(1)) - start).days)


# --- months carried as the hourly roll-up ----------------------------------------------------

def rolled(sample: pd.DataFrame, thin: int, start_us: int, hours: int, rng: np.random.Generator
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The roll-up of a day drawn with one cluster in `thin` (Traffic.day(thin=...)), scaled
    to the full day: each group's request count is drawn around thin × the sample's, its sums
    and bins are the sample's scaled to that count (bins by largest remainder, so they add
    up), and each pod-hour's busy time is the M/G/∞ busy probability of Poisson clusters,
    1 − exp(−Σ cluster spans × thin / 3600) — what the union of the full day's requests
    gives on average, without drawing them all."""
    pod_hours, rows = usage.summarise(sample, start_us, hours, encoded=False)
    if rows.empty:
        return pod_hours, rows
    n = rng.poisson(rows["requests"].to_numpy() * thin)
    n = np.maximum(n, 1)
    ratio = n / rows["requests"].to_numpy()
    outcomes = ("ok", "failed", "throttled", "cancelled")
    parts = _largest_remainder(rows[list(outcomes)].to_numpy() * ratio[:, None], n)
    for i, name in enumerate(outcomes):
        rows[name] = parts[:, i]
    rows["requests"] = n
    for name in ("input_tokens", "cached_tokens", "output_tokens", "prefill_us", "decode_us",
                 "prefills", "prefill_tokens", "queue_us"):
        rows[name] = np.rint(rows[name].to_numpy() * ratio).astype(np.int64)
    rows["ttft_counts"] = _scaled(rows["ttft_counts"], ratio, len(usage.TTFT_BOUNDS) + 1)
    rows["itl_counts"] = _scaled(rows["itl_counts"], ratio, len(usage.ITL_BOUNDS) + 1)
    return _pod_hours(pod_hours, rows, sample, thin, start_us), rows


def _largest_remainder(values: np.ndarray, totals: np.ndarray) -> np.ndarray:
    floor: np.ndarray = np.floor(values).astype(np.int64)
    short = totals - floor.sum(axis=1)
    order = np.argsort(-(values - floor), axis=1, kind="stable")
    for k in range(values.shape[1]):
        take = short > k
        floor[np.flatnonzero(take), order[take, k]] += 1
    return floor


def _scaled(bins: pd.Series, ratio: np.ndarray, width: int) -> list[str]:
    """Count arrays scaled to new totals (largest remainder), as the roll-up's sparse JSON."""
    counts = np.vstack(list(bins)) if len(bins) else np.zeros((0, width), dtype=np.int64)
    totals = np.rint(counts.sum(axis=1) * ratio).astype(np.int64)
    return [usage.encode(row) for row in _largest_remainder(counts * ratio[:, None], totals)]


def _pod_hours(pod_hours: pd.DataFrame, rows: pd.DataFrame, sample: pd.DataFrame, thin: int,
               start_us: int) -> pd.DataFrame:
    sums = rows.groupby(["pod", "hour"], sort=True)[
        ["requests", "ok", "failed", "throttled", "cancelled", "input_tokens",
         "output_tokens", "prefills"]].sum()
    out = pod_hours.set_index(["pod", "hour"])
    ratio = (sums["requests"] / out["requests"]).reindex(out.index).fillna(1.0).to_numpy()
    for name in sums.columns:
        out[name] = sums[name].reindex(out.index).fillna(0).astype(np.int64)
    width = len(usage.LATENCY_BOUNDS) + 1
    for name in ("ttft_counts", "e2e_counts"):
        out[name] = _scaled(out[name], ratio, width)
    begin = sample["arrival_us"] + np.rint(sample["queue_time"].fillna(0) * 1e6)
    end = sample["arrival_us"] + np.rint(sample["e2e_latency"] * 1e6)
    spans = pd.DataFrame({"pod": sample["pod"], "cluster": sample["cluster"],
                          "begin": begin, "end": end}).groupby(["pod", "cluster"]).agg(
        begin=("begin", "min"), end=("end", "max")).reset_index()
    spans["slot"] = (spans["cluster"] - start_us) // HOUR_US
    spans["seconds"] = (spans["end"] - spans["begin"]) / 1e6
    load = spans.groupby(["pod", "slot"])["seconds"].sum() * thin / 3600
    hours = pd.to_datetime(start_us + load.index.get_level_values("slot") * HOUR_US,
                           unit="us", utc=True)
    busy = pd.Series(3600 * (1 - np.exp(-load.to_numpy())),
                     index=pd.MultiIndex.from_arrays([load.index.get_level_values("pod"),
                                                      hours], names=["pod", "hour"]))
    out["busy_seconds"] = np.round(busy.reindex(out.index).fillna(0.0).to_numpy(), 6)
    return out.reset_index()[list(usage.HOUR_COLUMNS)]
