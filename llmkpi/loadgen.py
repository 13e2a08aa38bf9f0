"""Load generator: tenants with Poisson or bursty arrivals streaming through the openai client.

It measures from the client's side (TTFT, every inter-token gap, E2E) so a user can check the
sidecar's numbers against what a caller saw.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import openai
from openai.types.chat import ChatCompletionMessageParam

WORDS = ("latency token cache batch tenant budget margin revenue deploy feature engine"
         " prompt stream queue model serve cost value quarter growth").split()
FEATURES = ("chat", "search", "summarize", "code-assist", "agent")


PATTERNS = ("poisson", "bursty", "spike")
# spike: steady Poisson, with SPIKE_FACTOR times the rate from SPIKE_FROM to SPIKE_TO of the run
SPIKE_FROM, SPIKE_TO, SPIKE_FACTOR = 0.5, 0.65, 4.0


@dataclass(frozen=True)
class LoadSpec:
    target: str
    tenants: int = 5
    rps: float = 4.0
    duration: float = 30.0
    seed: int = 0
    pattern: str = "poisson"
    model: str | None = None
    prompt_median: int = 250
    output_median: int = 120
    usage_fraction: float = 0.5
    max_in_flight: int = 512
    tenant_zipf: float = 1.1
    warmup_requests: int = 1

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"--pattern must be one of {', '.join(PATTERNS)},"
                             f" not {self.pattern!r}")
        if self.tenants < 1 or self.rps <= 0 or self.duration <= 0:
            raise ValueError("--tenants, --rps and --duration must be positive")


@dataclass
class ClientResult:
    tenant: str
    feature: str
    api_key: str
    start: float
    asked_usage: bool
    ttft: float | None = None
    e2e: float | None = None
    gaps: list[float] = field(default_factory=list)
    chunks: int = 0
    response_id: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    planned_at: float = 0.0  # seconds from the start of the schedule


def spike_window(spec: LoadSpec) -> tuple[float, float] | None:
    """Seconds from the start where the spike pattern sends SPIKE_FACTOR times the rate."""
    if spec.pattern != "spike":
        return None
    return spec.duration * SPIKE_FROM, spec.duration * SPIKE_TO


@dataclass(frozen=True)
class Planned:
    at: float
    tenant: int
    feature: str
    prompt_words: int
    max_tokens: int
    asked_usage: bool


def tenant_key(index: int) -> str:
    return f"sk-llmkpi-demo-{index:04d}"


def plan(spec: LoadSpec) -> list[Planned]:
    """The whole arrival schedule, fixed by the seed before anything is sent."""
    rng = random.Random(spec.seed)
    weights = [1.0 / (i + 1) ** spec.tenant_zipf for i in range(spec.tenants)]
    out: list[Planned] = []
    t = 0.0
    while True:
        rate = spec.rps
        if spec.pattern == "bursty":  # 10 s cycles: 3 s at 2.5x, 7 s at ~0.36x: same mean
            rate = spec.rps * (2.5 if (t % 10.0) < 3.0 else (10 - 3 * 2.5) / 7)
        elif spec.pattern == "spike" and SPIKE_FROM <= t / spec.duration < SPIKE_TO:
            rate = spec.rps * SPIKE_FACTOR
        t += rng.expovariate(rate)
        if t >= spec.duration:
            return out
        tenant = rng.choices(range(spec.tenants), weights)[0]
        out.append(Planned(
            at=t, tenant=tenant, feature=FEATURES[rng.randrange(len(FEATURES))],
            prompt_words=min(4000, max(4, round(rng.lognormvariate(0, 0.9) * spec.prompt_median))),
            max_tokens=min(2048, max(1, round(rng.lognormvariate(0, 0.7) * spec.output_median))),
            asked_usage=rng.random() < spec.usage_fraction))


def _messages(item: Planned, rng: random.Random) -> list[ChatCompletionMessageParam]:
    system = f"You are the {item.feature} assistant of llmkpi. " * 6  # shared: prefix cache
    user = " ".join(rng.choice(WORDS) for _ in range(item.prompt_words))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def _one(client: openai.AsyncOpenAI, model: str, item: Planned,
               rng: random.Random, clock: Callable[[], float]) -> ClientResult:
    result = ClientResult(tenant=f"tenant-{item.tenant:04d}", feature=item.feature,
                          api_key=tenant_key(item.tenant), start=clock(),
                          asked_usage=item.asked_usage, planned_at=item.at)
    extra: dict[str, Any] = {"ignore_eos": True}
    try:
        stream = await client.chat.completions.create(
            model=model, messages=_messages(item, rng), max_tokens=item.max_tokens,
            stream=True, extra_body=extra,
            extra_headers={"Authorization": f"Bearer {result.api_key}",
                           "X-Feature": item.feature},
            stream_options={"include_usage": True} if item.asked_usage else openai.omit)
        last: float | None = None
        async for chunk in stream:
            now = clock()
            result.response_id = result.response_id or chunk.id
            if chunk.usage is not None:
                result.prompt_tokens = chunk.usage.prompt_tokens
                result.completion_tokens = chunk.usage.completion_tokens
            if any(c.delta.content for c in chunk.choices):
                result.chunks += 1
                if last is None:
                    result.ttft = now - result.start
                else:
                    result.gaps.append(now - last)
                last = now
        result.e2e = clock() - result.start
    except openai.OpenAIError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


class Progress:
    def __init__(self, total_seconds: float, out: TextIO) -> None:
        self.total, self.out = total_seconds, out
        self.sent = self.done = self.errors = 0
        self.started = time.monotonic()

    def show(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        width = 30
        filled = min(width, int(width * elapsed / self.total))
        bar = "#" * filled + "." * (width - filled)
        line = (f"[{bar}] {min(elapsed, self.total):5.1f}/{self.total:.0f}s  sent {self.sent}"
                f"  done {self.done}  in flight {self.sent - self.done}  errors {self.errors}")
        end = "\n" if final or not self.out.isatty() else "\r"
        self.out.write(line + end)
        self.out.flush()


async def run_load(spec: LoadSpec, *, progress_out: TextIO | None = sys.stderr,
                   clock: Callable[[], float] = time.perf_counter) -> list[ClientResult]:
    schedule = plan(spec)
    rng = random.Random(spec.seed + 1)
    client = openai.AsyncOpenAI(base_url=spec.target.rstrip("/") + "/v1", api_key="unused",
                                max_retries=0, timeout=600.0)
    model = spec.model or (await client.models.list()).data[0].id
    # The openai client's first stream pays ~100 ms of one-off set-up; keep it out of the stats.
    for _ in range(spec.warmup_requests):
        warm = Planned(at=0, tenant=0, feature=FEATURES[0], prompt_words=8, max_tokens=2,
                       asked_usage=True)
        await _one(client, model, warm, rng, clock)
    progress = Progress(spec.duration, progress_out) if progress_out else None
    limiter = asyncio.Semaphore(spec.max_in_flight)
    results: list[ClientResult] = []

    async def fire(item: Planned) -> None:
        async with limiter:
            result = await _one(client, model, item, rng, clock)
        results.append(result)
        if progress:
            progress.done += 1
            progress.errors += result.error is not None

    async def ticker() -> None:
        while progress:
            progress.show()
            await asyncio.sleep(1.0)

    tick = asyncio.create_task(ticker())
    begin = time.monotonic()
    tasks = []
    for item in schedule:
        delay = begin + item.at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(item)))
        if progress:
            progress.sent += 1
    await asyncio.gather(*tasks)
    tick.cancel()
    if progress:
        progress.show(final=True)
    await client.close()
    return results


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (no interpolation), as load testers usually report."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary_rows(results: list[ClientResult]) -> list[dict[str, Any]]:
    by_tenant: dict[str, list[ClientResult]] = {}
    for r in results:
        by_tenant.setdefault(r.tenant, []).append(r)
    rows = []
    for tenant, items in [*sorted(by_tenant.items()), ("ALL", results)]:
        ok = [r for r in items if r.error is None]
        ttft = [r.ttft for r in ok if r.ttft is not None]
        itl = [g for r in ok for g in r.gaps]
        e2e = [r.e2e for r in ok if r.e2e is not None]
        row: dict[str, Any] = {"tenant": tenant, "requests": len(items),
                               "errors": len(items) - len(ok)}
        for name, values in (("ttft", ttft), ("itl", itl), ("e2e", e2e)):
            for q in (0.5, 0.95, 0.99):
                row[f"{name}_p{round(q * 100)}_ms"] = quantile(values, q) * 1000
        rows.append(row)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'tenant':<12} {'reqs':>5} {'err':>4} | {'TTFT p50':>9} {'p95':>7} {'p99':>7}"
            f" | {'ITL p50':>8} {'p95':>6} {'p99':>6} | {'E2E p50':>8} {'p95':>7} {'p99':>7}"
            "   (ms, client side)")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['tenant']:<12} {r['requests']:>5} {r['errors']:>4} |"
            f" {r['ttft_p50_ms']:>9.1f} {r['ttft_p95_ms']:>7.1f} {r['ttft_p99_ms']:>7.1f} |"
            f" {r['itl_p50_ms']:>8.1f} {r['itl_p95_ms']:>6.1f} {r['itl_p99_ms']:>6.1f} |"
            f" {r['e2e_p50_ms']:>8.1f} {r['e2e_p95_ms']:>7.1f} {r['e2e_p99_ms']:>7.1f}")
    return "\n".join(lines)


def write_results(results: list[ClientResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in results:
            f.write(json.dumps(asdict(r)) + "\n")
