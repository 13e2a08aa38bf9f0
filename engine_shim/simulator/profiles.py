"""Timing and capacity constants of simulated engines, each calibrated to a named setup."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    """Constants of one engine. Times in seconds; KV capacity = num_blocks × block_size tokens."""

    name: str
    doc: str
    model: str
    num_blocks: int
    block_size: int
    max_num_seqs: int
    max_batched_tokens: int
    max_model_len: int
    step_overhead: float
    prefill_per_token: float
    decode_per_seq: float
    attention_per_kv_token: float
    output_len_median: int = 180
    output_len_sigma: float = 0.8

    def step_time(self, prefill_tokens: int, decode_seqs: int, decode_kv_tokens: int) -> float:
        """One engine step: fixed cost, compute-bound prefill, memory-bound decode."""
        if prefill_tokens == 0 and decode_seqs == 0:
            return 0.0
        return (self.step_overhead + prefill_tokens * self.prefill_per_token
                + decode_seqs * self.decode_per_seq
                + decode_kv_tokens * self.attention_per_kv_token)


H100_LLAMA3_8B = Profile(
    name="h100-llama3-8b",
    doc=(
        "Llama-3-8B in BF16 on one H100 SXM with vLLM defaults. Decode is memory-bound: 16 GB"
        " of weights at ~3.3 TB/s gives ~5 ms a step plus ~1 ms scheduling and sampling, so a"
        " lone stream sees ~6-7 ms ITL, rising to ~15-25 ms at batch 128-256 with long"
        " contexts (KV reads: 128 KiB per token, ~43 ns each). Prefill is compute-bound at"
        " ~20k tokens/s (50 us/token), so a 512-token prompt has ~30-40 ms TTFT when idle."
        " KV: (80 GB x 0.9 - 16 GB weights - activations) / 128 KiB = ~400k tokens."
    ),
    model="meta-llama/Meta-Llama-3-8B-Instruct",
    num_blocks=25_000,
    block_size=16,
    max_num_seqs=256,
    max_batched_tokens=8192,
    max_model_len=8192,
    step_overhead=0.006,
    prefill_per_token=0.000050,
    decode_per_seq=0.000030,
    attention_per_kv_token=0.000000043,
)

L4_LLAMA3_8B = Profile(
    name="l4-llama3-8b",
    doc=(
        "Llama-3-8B in BF16 on one 24 GB L4: ~300 GB/s makes a decode step ~55 ms, ~120"
        " TFLOP/s makes prefill ~4k tokens/s, and only ~4.5 GB is left for KV (~36k tokens),"
        " so a few dozen concurrent chats fill the cache: the demo profile for KV pressure,"
        " queueing and preemption."
    ),
    model="meta-llama/Meta-Llama-3-8B-Instruct",
    num_blocks=2_250,
    block_size=16,
    max_num_seqs=128,
    max_batched_tokens=4096,
    max_model_len=8192,
    step_overhead=0.052,
    prefill_per_token=0.000250,
    decode_per_seq=0.000100,
    attention_per_kv_token=0.00000044,
)

L4_LLAMA32_3B = replace(  # the same card and scheduler limits, a smaller model
    L4_LLAMA3_8B,
    name="l4-llama3.2-3b",
    doc=(
        "Llama-3.2-3B in BF16 on one 24 GB L4: 6.4 GB of weights at ~300 GB/s makes a decode"
        " step ~22 ms plus ~2 ms scheduling, prefill runs at ~10k tokens/s, and ~15 GB of KV"
        " (112 KiB per token) holds ~130k tokens: the cheap pod for short answers."
    ),
    model="meta-llama/Llama-3.2-3B-Instruct",
    num_blocks=8_000,
    step_overhead=0.024,
    prefill_per_token=0.000100,
    decode_per_seq=0.000060,
    attention_per_kv_token=0.00000018,
)

DEMO_SMALL = replace(
    H100_LLAMA3_8B,
    name="demo-small-cache",
    doc=(
        "The H100 timings with a KV cache cut to 450 blocks (7,200 tokens), so a laptop demo"
        " at a few requests per second fills the cache in bursts: KV usage near 100 %, a"
        " waiting queue, preemptions and the TTFT tail they cause."
    ),
    num_blocks=450,
    max_num_seqs=64,
)

DEMO_LIVE = replace(
    H100_LLAMA3_8B,
    name="demo-live",
    doc=(
        "The H100 timings with a KV cache cut to 1,200 blocks (19,200 tokens): `make demo`'s"
        " steady few requests per second fit with room to spare (TTFT in tens of ms), its"
        " announced 4x spike fills the cache, queues first tokens and burns the TTFT budget."
    ),
    num_blocks=1_200,
    max_num_seqs=64,
)

SLOW = replace(
    H100_LLAMA3_8B,
    name="slow",
    doc=(
        "A degraded engine (thermal throttling, a noisy neighbour): every step 10x slower."
        " Switching to it must make TTFT and ITL SLO alerts fire."
    ),
    step_overhead=0.060,
    prefill_per_token=0.0005,
    decode_per_seq=0.0003,
    attention_per_kv_token=0.00000043,
)

ZERO_DELAY = replace(
    H100_LLAMA3_8B,
    name="zero-delay",
    doc=(
        "No model time at all: tokens are produced as fast as the event loop runs. Used to"
        " measure the sidecar's own overhead, where the engine must not dominate."
    ),
    num_blocks=1_000_000,
    max_num_seqs=4096,
    max_batched_tokens=1_000_000,
    step_overhead=0.0,
    prefill_per_token=0.0,
    decode_per_seq=0.0,
    attention_per_kv_token=0.0,
)

PROFILES: dict[str, Profile] = {
    p.name: p for p in (H100_LLAMA3_8B, L4_LLAMA3_8B, L4_LLAMA32_3B, DEMO_SMALL, DEMO_LIVE, SLOW,
                        ZERO_DELAY)
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown simulator profile {name!r}; choose one of {', '.join(sorted(PROFILES))}"
        ) from None
