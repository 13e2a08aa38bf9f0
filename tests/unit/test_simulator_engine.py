import asyncio
import itertools
import statistics
from dataclasses import replace

from engine_shim.simulator.engine import Engine, Sequence, prefix_block_hashes
from engine_shim.simulator.profiles import H100_LLAMA3_8B, PROFILES, Profile

FAST = replace(H100_LLAMA3_8B, name="fast-test", step_overhead=0.002, prefill_per_token=2e-5,
               decode_per_seq=2e-4, attention_per_kv_token=0.0)


async def drive(profile: Profile, jobs: list[tuple[int, int]], *, hashes: tuple[int, ...] = (),
                stagger: float = 0.0) -> tuple[Engine, list[Sequence], list[list[float]]]:
    """Run (prompt, output) jobs through an engine; return token arrival times per job."""
    engine = Engine(profile)
    loop_task = asyncio.create_task(engine.run())
    loop = asyncio.get_running_loop()
    seqs, times = [], []

    async def consume(seq: Sequence) -> list[float]:
        out = []
        while (await seq.tokens.get()) is not None:
            out.append(loop.time())
        return out

    consumers = []
    for prompt, output in jobs:
        seq = Sequence(request_id=str(len(seqs)), prompt_tokens=prompt, output_limit=output,
                       finish_reason="length", arrival=loop.time(), prefix_hashes=hashes)
        engine.submit(seq)
        seqs.append(seq)
        consumers.append(asyncio.create_task(consume(seq)))
        if stagger:
            await asyncio.sleep(stagger)
    times = list(await asyncio.gather(*consumers))
    loop_task.cancel()
    return engine, seqs, times


def ttft_and_itl(seqs: list[Sequence], times: list[list[float]]) -> tuple[float, float]:
    ttfts = [t[0] - s.arrival for s, t in zip(seqs, times, strict=True)]
    gaps = [b - a for t in times for a, b in itertools.pairwise(t)]
    return statistics.mean(ttfts), statistics.mean(gaps)


def test_step_time_grows_with_prefill_and_batch() -> None:
    p = H100_LLAMA3_8B
    assert p.step_time(0, 0, 0) == 0
    assert p.step_time(0, 1, 500) < p.step_time(0, 64, 64 * 500) < p.step_time(0, 256, 256 * 2000)
    assert p.step_time(512, 0, 0) < p.step_time(4096, 0, 0)
    # Calibration: a lone stream decodes in ~6-7 ms; 512 prompt tokens prefill in ~30-40 ms.
    assert 0.005 < p.step_time(0, 1, 600) < 0.008
    assert 0.025 < p.step_time(512, 0, 0) < 0.045


def test_latency_rises_under_load_as_a_real_engine() -> None:
    # the quietest of three lone requests: one scheduler hiccup must not set the baseline
    alone = [ttft_and_itl(*asyncio.run(drive(FAST, [(400, 20)]))[1:]) for _ in range(3)]
    _, seqsn, timesn = asyncio.run(drive(FAST, [(400, 20)] * 48))
    ttft1, itl1 = min(a[0] for a in alone), min(a[1] for a in alone)
    ttftn, itln = ttft_and_itl(seqsn, timesn)
    assert ttftn > 2 * ttft1
    assert itln > 2 * itl1
    assert all(len(t) == 20 for t in timesn)


def test_full_kv_cache_queues_and_preempts_but_finishes_everything() -> None:
    tiny = replace(FAST, num_blocks=24, block_size=4, max_num_seqs=8)
    engine, _seqs, times = asyncio.run(drive(tiny, [(8, 30)] * 6))
    assert [len(t) for t in times] == [30] * 6
    assert engine.metrics.preemptions.values[""] > 0
    assert engine.free_blocks == tiny.num_blocks
    assert engine.metrics.generation_tokens.values[""] == 180
    assert engine.metrics.kv_usage.values[""] == 0.0


def test_abort_frees_blocks_and_leaves_the_queue() -> None:
    async def scenario() -> Engine:
        engine = Engine(FAST)
        task = asyncio.create_task(engine.run())
        seq = Sequence(request_id="x", prompt_tokens=100, output_limit=10_000,
                       finish_reason="length", arrival=0.0)
        engine.submit(seq)
        await seq.tokens.get()
        assert engine.free_blocks < FAST.num_blocks
        engine.abort(seq)
        task.cancel()
        return engine

    engine = asyncio.run(scenario())
    assert engine.free_blocks == FAST.num_blocks and not engine.running and not engine.waiting


def test_prefix_cache_serves_a_repeated_prompt() -> None:
    tokens = [f"w{i}" for i in range(64)]
    hashes = prefix_block_hashes(tokens, FAST.block_size)
    assert len(hashes) == 4
    engine, seqs, _ = asyncio.run(drive(FAST, [(64, 2), (64, 2)], hashes=hashes, stagger=0.05))
    assert seqs[0].cached_tokens == 0
    assert seqs[1].cached_tokens == 63  # the last prompt token is always recomputed
    assert engine.metrics.prefix_hits.values[""] == 63
    assert engine.metrics.prefix_queries.values[""] == 128


def test_prefix_hashes_chain() -> None:
    a = prefix_block_hashes(["x"] * 32, 16)
    b = prefix_block_hashes(["y"] * 16 + ["x"] * 16, 16)
    assert a[1] != b[1]  # same block text, different history


def test_every_profile_is_documented() -> None:
    for name, profile in PROFILES.items():
        assert profile.name == name and len(profile.doc) > 60
