"""The simulated engine's scheduler: continuous batching over a paged KV cache, in real time.

Each step: running decodes get one token each (preempting the newest sequence when the cache
is full), unfinished chunked prefills continue, then waiting requests are admitted FCFS while
the token budget, the sequence limit and free KV blocks allow. The step then takes the time
the profile gives for that work, and its tokens are delivered.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from engine_shim.simulator.exposition import EngineMetrics
from engine_shim.simulator.profiles import Profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinishedStats:
    """A finished request under the names of vLLM's FinishedRequestStats: what vLLM hands its
    in-process stat loggers (the llmkpi plugin) when a request ends. Times in seconds."""

    request_id: str
    finish_reason: str
    e2e_latency: float
    num_prompt_tokens: int
    num_generation_tokens: int
    num_cached_tokens: int
    queued_time: float
    prefill_time: float
    decode_time: float
    inference_time: float
    mean_time_per_output_token: float


@dataclass(eq=False)
class Sequence:
    """One request inside the engine. `generated` counts tokens sampled so far."""

    request_id: str
    prompt_tokens: int
    output_limit: int
    finish_reason: str
    arrival: float
    prefix_hashes: tuple[int, ...] = ()
    external_tokens: int = 0  # prompt KV that arrived from a prefill engine (P/D)
    cached_tokens: int = 0
    computed: int = 0
    generated: int = 0
    blocks: int = 0
    prefilling: bool = True
    prefix_checked: bool = False
    aborted: bool = False
    finished: bool = False
    first_scheduled: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    tokens: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)

    @property
    def prefill_target(self) -> int:
        """KV to compute before the next token can be sampled (recompute after preemption)."""
        return self.prompt_tokens + self.generated


class Engine:
    def __init__(self, profile: Profile, index: int = 0, role: str = "") -> None:
        self.profile = profile
        self.index = index  # its data-parallel rank: vLLM's `engine` label
        self.role = role  # prefill | decode in P/D disaggregation, "" for both
        self.deferred = 0  # requests here waiting for their KV to arrive (reason=deferred)
        self.free_blocks = profile.num_blocks
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.metrics = EngineMetrics(profile.model, index, role)
        self._prefix_cache: OrderedDict[int, None] = OrderedDict()
        self._wake = asyncio.Event()
        self.steps = 0
        self.busy_seconds = 0.0
        # Called with each finished request, as vLLM calls its stat loggers; never raises here.
        self.on_finish: Callable[[FinishedStats], None] | None = None

    # -- admission -------------------------------------------------------------------------
    def blocks_for(self, tokens: int) -> int:
        return math.ceil(tokens / self.profile.block_size)

    def fits(self, prompt_tokens: int, output_limit: int) -> bool:
        return self.blocks_for(prompt_tokens + output_limit) <= self.profile.num_blocks

    def submit(self, seq: Sequence) -> None:
        self.waiting.append(seq)
        self._update_gauges()
        self._wake.set()

    def abort(self, seq: Sequence) -> None:
        """The client went away: free the sequence's blocks and forget it."""
        if seq.finished or seq.aborted:
            return
        seq.aborted = True
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        self._release(seq)
        self._update_gauges()

    def set_profile(self, profile: Profile) -> None:
        """Change timings at run time (a degraded GPU); KV capacity stays as it is."""
        self.profile = Profile(**{**vars(profile), "num_blocks": self.profile.num_blocks,
                                  "block_size": self.profile.block_size})

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_step = loop.time()
        while True:
            if not self.running and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                next_step = loop.time()
            prefills, decodes = self._schedule(loop.time())
            if not prefills and not decodes:
                await asyncio.sleep(0.001)
                continue
            duration = self.profile.step_time(
                sum(chunk for _, chunk in prefills), len(decodes),
                sum(seq.computed for seq in decodes))
            self.steps += 1
            self.busy_seconds += duration
            next_step = max(next_step, loop.time()) + duration
            await asyncio.sleep(max(0.0, next_step - loop.time()))
            self._apply(prefills, decodes, loop.time())

    def _schedule(self, now: float) -> tuple[list[tuple[Sequence, int]], list[Sequence]]:
        budget = self.profile.max_batched_tokens
        decodes: list[Sequence] = []
        for seq in list(self.running):
            if seq.prefilling or seq not in self.running or budget <= 0:
                continue
            need = self.blocks_for(seq.computed + 1)
            while not self._allocate(seq, need):
                victim = self.running[-1]
                self._preempt(victim)
                if victim is seq:
                    break
            if seq in self.running:
                decodes.append(seq)
                budget -= 1
        prefills: list[tuple[Sequence, int]] = []
        for seq in self.running:
            if seq.prefilling and budget > 0:
                chunk = min(seq.prefill_target - seq.computed, budget)
                if self._allocate(seq, self.blocks_for(seq.computed + chunk)):
                    prefills.append((seq, chunk))
                    budget -= chunk
        while self.waiting and budget > 0 and len(self.running) < self.profile.max_num_seqs:
            seq = self.waiting[0]
            if not seq.prefix_checked:
                self._lookup_prefix(seq)
            chunk = min(seq.prefill_target - seq.computed, budget)
            if not self._allocate(seq, self.blocks_for(seq.computed + chunk)):
                break
            self.waiting.popleft()
            self.running.append(seq)
            seq.prefilling = True
            if seq.first_scheduled is None:
                seq.first_scheduled = now
            prefills.append((seq, chunk))
            budget -= chunk
        self._update_gauges()
        return prefills, decodes

    def _apply(self, prefills: list[tuple[Sequence, int]], decodes: list[Sequence],
               now: float) -> None:
        for seq, chunk in prefills:
            if seq.aborted or seq not in self.running:
                continue
            seq.computed += chunk
            if seq.computed >= seq.prefill_target:
                seq.prefilling = False
                if seq.generated == 0:
                    self.metrics.prompt_tokens.add(seq.prompt_tokens)
                    self._remember_prefix(seq)
                self._emit(seq, now)
        for seq in decodes:
            if seq.aborted or seq not in self.running:
                continue
            seq.computed += 1
            self._emit(seq, now)
        self._update_gauges()

    def _emit(self, seq: Sequence, now: float) -> None:
        m = self.metrics
        if seq.first_token is None:
            seq.first_token = now
            m.ttft.observe(now - seq.arrival)
        elif seq.last_token is not None:
            m.itl.observe(now - seq.last_token)
        seq.last_token = now
        seq.generated += 1
        m.generation_tokens.add()
        seq.tokens.put_nowait(seq.generated)
        if seq.generated >= seq.output_limit:
            self._finish(seq, now)

    def _finish(self, seq: Sequence, now: float) -> None:
        seq.finished = True
        self.running.remove(seq)
        self._release(seq)
        m = self.metrics
        scheduled = seq.first_scheduled if seq.first_scheduled is not None else now
        first = seq.first_token if seq.first_token is not None else now
        m.success.add(key=seq.finish_reason)
        m.e2e.observe(now - seq.arrival)
        m.queue.observe(scheduled - seq.arrival)
        m.prefill.observe(first - scheduled)
        m.decode.observe(now - first)
        m.inference.observe(now - scheduled)
        seq.tokens.put_nowait(None)
        if self.on_finish is not None:
            self._report(seq, now, scheduled, first)

    def _report(self, seq: Sequence, now: float, scheduled: float, first: float) -> None:
        assert self.on_finish is not None
        decode = now - first
        try:
            self.on_finish(FinishedStats(
                seq.request_id, seq.finish_reason, now - seq.arrival, seq.prompt_tokens,
                seq.generated, seq.cached_tokens, scheduled - seq.arrival, first - scheduled,
                decode, now - scheduled, decode / max(seq.generated - 1, 1)))
        except Exception:  # telemetry never stops the engine
            log.exception("on_finish failed for %s", seq.request_id)

    # -- KV blocks and the prefix cache ----------------------------------------------------
    def _allocate(self, seq: Sequence, need: int) -> bool:
        extra = need - seq.blocks
        if extra <= 0:
            return True
        if extra > self.free_blocks:
            return False
        self.free_blocks -= extra
        seq.blocks = need
        return True

    def _release(self, seq: Sequence) -> None:
        self.free_blocks += seq.blocks
        seq.blocks = 0

    def _preempt(self, seq: Sequence) -> None:
        """Recompute-style preemption (vLLM v1): drop the KV, requeue at the front."""
        self.running.remove(seq)
        self._release(seq)
        seq.computed = 0
        seq.prefilling = True
        self.waiting.appendleft(seq)
        self.metrics.preemptions.add()

    def _lookup_prefix(self, seq: Sequence) -> None:
        seq.prefix_checked = True
        by_source = self.metrics.prompt_by_source
        if seq.external_tokens:  # P/D: the prompt's KV came from the prefill engine
            seq.cached_tokens = min(seq.external_tokens, max(seq.prompt_tokens - 1, 0))
            seq.computed = seq.cached_tokens
            by_source.add(seq.cached_tokens, "external_kv_transfer")
            by_source.add(seq.prompt_tokens - seq.cached_tokens, "local_compute")
            return
        hits = 0
        for block_hash in seq.prefix_hashes:
            if block_hash not in self._prefix_cache:
                break
            self._prefix_cache.move_to_end(block_hash)
            hits += 1
        # The last prompt token is always computed, to sample from (as vLLM does).
        seq.cached_tokens = min(hits * self.profile.block_size, max(seq.prompt_tokens - 1, 0))
        seq.computed = seq.cached_tokens
        self.metrics.prefix_queries.add(seq.prompt_tokens)
        self.metrics.prefix_hits.add(seq.cached_tokens)
        by_source.add(seq.cached_tokens, "local_cache_hit")
        by_source.add(seq.prompt_tokens - seq.cached_tokens, "local_compute")

    def _remember_prefix(self, seq: Sequence) -> None:
        cache = self._prefix_cache
        for block_hash in seq.prefix_hashes:
            cache[block_hash] = None
            cache.move_to_end(block_hash)
        while len(cache) > self.profile.num_blocks // 2:
            cache.popitem(last=False)

    def _update_gauges(self) -> None:
        m = self.metrics
        m.running.set(len(self.running))
        m.waiting.set(len(self.waiting) + self.deferred)  # vLLM's count includes deferred
        m.waiting_by_reason.set(len(self.waiting), "capacity")
        m.waiting_by_reason.set(self.deferred, "deferred")
        m.kv_usage.set(1.0 - self.free_blocks / self.profile.num_blocks)


def prefix_block_hashes(tokens: list[str], block_size: int) -> tuple[int, ...]:
    """Chain hashes of the prompt's full blocks: a block matches only with all before it."""
    hashes: list[int] = []
    parent = 0
    for start in range(0, len(tokens) - block_size + 1, block_size):
        parent = hash((parent, tuple(tokens[start : start + block_size])))
        hashes.append(parent)
    return tuple(hashes)
