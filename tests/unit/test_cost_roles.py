"""Cost per role in P/D disaggregation, hand-computed: prefill pods' GPU time is charged to
input tokens, decode pods' to output tokens, and a request the prefill pod's sidecar also
recorded is counted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from collectors import usage
from kpi_mapping.cost import allocate, by, by_role, per_million_tokens

T0 = datetime(2026, 10, 1, 10, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def row(pod: str, role: str, at: float, *, queue: float, ttft: float, e2e: float,
        prompt: int, output: int, tenant: str) -> dict[str, Any]:
    """A sidecar's row: no engine spans, so prefill = TTFT − queue, decode = e2e − TTFT."""
    return {"pod": pod, "role": role, "model": "m", "tenant": tenant, "feature": "chat",
            "arrival": pd.Timestamp(T0 + timedelta(seconds=at)), "outcome": "ok",
            "http_status": 200, "queue_time": queue, "time_to_first_token": ttft,
            "e2e_latency": e2e, "prompt_tokens": prompt, "cached_prompt_tokens": 0,
            "output_tokens": output}


# two client requests, each prefilled on pod pf (its sidecar records the 1-token prefill)
# and decoded on pod dc (its sidecar records what the client saw)
LEDGER = pd.DataFrame([
    row("pf", "prefill", 0, queue=0, ttft=0.4, e2e=0.4, prompt=1000, output=1, tenant="a"),
    row("dc", "decode", 0.4, queue=0.5, ttft=0.6, e2e=10.6, prompt=1000, output=200,
        tenant="a"),
    row("pf", "prefill", 1800, queue=0, ttft=0.6, e2e=0.6, prompt=500, output=1, tenant="b"),
    row("dc", "decode", 1800.6, queue=0.2, ttft=0.3, e2e=5.3, prompt=500, output=100,
        tenant="b"),
])
GPUS = pd.DataFrame([{"pod": pod, "gpu_type": "H100", "gpu_count": 1,
                      "dollars_per_gpu_hour": 36.0, "valid_from": pd.Timestamp(T0),
                      "valid_to": pd.NaT} for pod in ("pf", "dc")])


def test_requests_and_tokens_are_counted_once_across_roles() -> None:
    pod_hours, rows = usage.from_ledger(LEDGER)
    hours = pod_hours.set_index("pod")
    # the prefill pod's rows are prefills, not requests: 2 requests, 1,500 prompt tokens
    assert hours.loc["pf", ["requests", "prefills", "input_tokens", "role"]].tolist() == [
        0, 2, 0, "prefill"]
    assert hours.loc["dc", ["requests", "prefills", "input_tokens", "output_tokens",
                            "role"]].tolist() == [2, 0, 1500, 300, "decode"]
    # busy: pf 0.4 + 0.6 = 1.0 s; dc [0.9, 11.0) + [1800.8, 1805.9) = 10.1 + 5.1 = 15.2 s
    assert hours.loc["pf", "busy_seconds"] == 1.0
    assert round(hours.loc["dc", "busy_seconds"], 6) == 15.2
    work = rows.set_index(["pod", "tenant"])
    # pf: all work prefill (0.4 s, 0.6 s); dc: all decode (0.1 + 10.0 s, 0.1 + 5.0 s)
    assert work.loc[("pf", "a"), ["prefill_us", "decode_us", "prefill_tokens"]].tolist() == [
        400_000, 0, 1000]
    assert work.loc[("dc", "a"), ["prefill_us", "decode_us", "queue_us"]].tolist() == [
        0, 10_100_000, 500_000]
    assert work.loc[("dc", "b"), ["prefill_us", "decode_us", "queue_us"]].tolist() == [
        0, 5_100_000, 200_000]


def test_prefill_time_is_charged_to_input_and_decode_time_to_output() -> None:
    result = allocate(LEDGER, GPUS, T0, T1)
    pods = result.pods.set_index("pod")
    # bills: 1 h × 1 GPU × $36 = 3,600 ¢ each; pf used $36 × 1.0 / 3600 = $0.01 = 1 ¢
    assert pods.loc["pf", ["role", "bill_cents", "allocated_cents", "idle_cents"]].tolist() \
        == ["prefill", 3600, 1, 3599]
    # dc used $36 × 15.2 / 3600 = $0.152: 15.2 ¢ against 3,584.8 ¢ idle, the .8 rounds up
    assert pods.loc["dc", ["role", "bill_cents", "allocated_cents", "idle_cents"]].tolist() \
        == ["decode", 3600, 15, 3585]
    nano = result.usage.set_index(["pod", "tenant"])
    # pf's $0.01 = 10,000,000 n$ split 0.4 : 0.6, all input; dc's 152,000,000 n$ split
    # 10.1 : 5.1, all output
    assert nano.loc[("pf", "a"), ["input_nano", "output_nano"]].tolist() == [4_000_000, 0]
    assert nano.loc[("pf", "b"), ["input_nano", "output_nano"]].tolist() == [6_000_000, 0]
    assert nano.loc[("dc", "a"), ["input_nano", "output_nano"]].tolist() == [0, 101_000_000]
    assert nano.loc[("dc", "b"), ["input_nano", "output_nano"]].tolist() == [0, 51_000_000]
    model = per_million_tokens(result).set_index("model").loc["m"]
    # input: $0.01 over 1,500 prompt tokens = $6.6667/M; output $0.152 / 300 = $506.67/M
    assert round(model["busy_input_per_m"], 4) == 6.6667
    assert round(model["busy_output_per_m"], 2) == 506.67
    assert model[["requests", "input_tokens", "output_tokens"]].tolist() == [2, 1500, 300]
    tenants = by(result, "tenant").set_index("tenant")
    # busy ¢ over [a in 0.4, b in 0.6, a out 10.1, b out 5.1] of 16: floors 15, .6 wins
    assert tenants["cents"].to_dict() == {"a": 10, "b": 6}
    assert tenants["requests"].to_dict() == {"a": 1, "b": 1}


def test_the_bill_by_role() -> None:
    roles = by_role(allocate(LEDGER, GPUS, T0, T1)).set_index("role")
    assert roles.loc["prefill", ["pods", "bill_cents", "allocated_cents", "idle_cents",
                                 "requests", "prefills", "tokens"]].tolist() == [
        1, 3600, 1, 3599, 0, 2, 1500]
    # the prefill pod's own bill per prompt token it prefilled: $36 / 1,500 × 1e6
    assert roles.loc["prefill", "per_m_tokens"] == 24_000.0
    # the decode pod's per output token: $36 / 300 × 1e6; its requests waited (0.5 + 0.2) / 2
    assert roles.loc["decode", ["tokens", "per_m_tokens"]].tolist() == [300, 120_000.0]
    assert round(roles.loc["decode", "queue_s_per_request"], 6) == 0.35
    # the roles add up to the bill
    assert int(roles["bill_cents"].sum()) == 7200
