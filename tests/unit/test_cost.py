"""Cost allocation: hand-computed cents on a small ledger; parts + idle = bill on random ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from kpi_mapping.cost import allocate, busy_seconds, margin_by_tenant, per_million_tokens

T0 = datetime(2026, 10, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def request(pod: str, start_s: float, prefill: float | None, decode: float | None,
            *, tenant: str = "acme", prompt: int = 100, cached: int = 0, output: int = 50,
            e2e: float | None = None, ttft: float | None = None) -> dict[str, Any]:
    return {"pod": pod, "model": "m", "tenant": tenant, "feature": "chat",
            "arrival": pd.Timestamp(T0 + timedelta(seconds=start_s)), "finish": None,
            "outcome": "ok", "time_to_first_token": ttft if ttft is not None else prefill,
            "e2e_latency": e2e if e2e is not None else (prefill or 0) + (decode or 0),
            "queue_time": 0.0, "prefill_time": prefill, "decode_time": decode,
            "prompt_tokens": prompt, "cached_prompt_tokens": cached, "output_tokens": output}


def inventory(*rows: tuple[str, float, int]) -> pd.DataFrame:
    return pd.DataFrame([{"pod": pod, "gpu_type": "H100", "gpu_count": count,
                          "dollars_per_gpu_hour": price, "valid_from": pd.Timestamp(T0),
                          "valid_to": pd.NaT} for pod, price, count in rows])


def test_hand_computed_cents() -> None:
    ledger = pd.DataFrame([
        request("p", 0, 10, 90),                          # busy 0-100 s
        request("p", 50, 30, 70, prompt=100, cached=50),  # busy 50-150 s; half its prompt cached
        request("nowhere", 10, 1, 1),                     # a pod with no price
    ])
    result = allocate(ledger, inventory(("p", 3.60, 1)), T0, T1)
    (pod,) = result.pods.to_dict("records")
    assert pod["bill_cents"] == 360 and pod["busy_s"] == 150
    # used = 360 × 150 / 3600 = 15 cents; weights 10, 90, 15, 70 of 185 → 0.81, 7.30, 1.22, 5.68
    assert pod["allocated_cents"] == 15 and pod["idle_cents"] == 345
    priced = result.requests[result.requests["pod"] == "p"]
    assert priced["input_cents"].tolist() == [1, 1]
    assert priced["output_cents"].tolist() == [7, 6]  # largest remainders get the last cents
    assert result.requests[result.requests["pod"] == "nowhere"]["cents"].isna().all()


def test_sidecar_rows_without_engine_times_use_ttft_and_the_rest() -> None:
    ledger = pd.DataFrame([request("p", 0, None, None, ttft=1.0, e2e=4.0)])
    result = allocate(ledger, inventory(("p", 36.0, 1)), T0, T1)
    row = result.requests.iloc[0]
    assert (row["input_cents"], row["output_cents"]) == (1, 3)  # 4 cents used: 1 s + 3 s


def test_two_gpus_and_a_price_change_inside_the_period() -> None:
    gpus = pd.DataFrame([
        {"pod": "p", "gpu_type": "H100", "gpu_count": 2, "dollars_per_gpu_hour": 2.0,
         "valid_from": pd.Timestamp(T0 - timedelta(days=1)),
         "valid_to": pd.Timestamp(T0 + timedelta(minutes=30))},
        {"pod": "p", "gpu_type": "H100", "gpu_count": 2, "dollars_per_gpu_hour": 1.0,
         "valid_from": pd.Timestamp(T0 + timedelta(minutes=30)), "valid_to": pd.NaT}])
    result = allocate(pd.DataFrame([request("p", 0, 1, 1)]), gpus, T0, T1)
    assert result.bill_cents == 300  # 2 GPUs × (0.5 h × $2 + 0.5 h × $1)


def test_per_million_tokens_and_margin() -> None:
    ledger = pd.DataFrame([request("p", 0, 1800, 1800, prompt=1_000_000, output=500_000,
                                   tenant="acme")])
    result = allocate(ledger, inventory(("p", 10.0, 1)), T0, T1)
    rates = per_million_tokens(result).iloc[0]
    assert (rates["input_per_m"], rates["output_per_m"]) == (5.0, 10.0)
    assert abs(rates["blended_per_m"] - 10 / 1.5) < 1e-9
    revenue = pd.DataFrame([{"tenant": "acme", "revenue": 40.0},
                            {"tenant": "quiet", "revenue": 5.0}])
    margin = margin_by_tenant(result, revenue).set_index("tenant")
    assert margin.loc["acme", "margin"] == 0.75 and margin.loc["quiet", "margin"] == 1.0


def test_busy_seconds_is_the_union() -> None:
    starts, ends = np.array([5.0, 0.0, 20.0, 21.0]), np.array([15.0, 10.0, 30.0, 25.0])
    assert busy_seconds(starts, ends) == 25.0


requests_strategy = st.lists(st.tuples(
    st.sampled_from(["a", "b", "c"]), st.floats(0, 3600), st.floats(0, 600),
    st.floats(0, 600), st.integers(0, 4000), st.integers(0, 4000)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(requests_strategy, st.floats(0.01, 40.0), st.floats(0.01, 40.0), st.integers(1, 8))
def test_parts_and_idle_add_back_to_the_bill(rows: list[tuple[str, float, float, float, int,
                                                                int]],
                                             price_a: float, price_b: float, count: int) -> None:
    ledger = pd.DataFrame([request(pod, start, pre, dec, prompt=prompt,
                                   cached=min(cached, prompt))
                           for pod, start, pre, dec, prompt, cached in rows]
                          or [request("a", 0, 0, 0)])
    result = allocate(ledger, inventory(("a", price_a, count), ("b", price_b, 1)), T0, T1)
    priced = result.requests["cents"].dropna()
    assert int(priced.sum()) + result.idle_cents == result.bill_cents
    assert (priced >= 0).all() and (result.pods["idle_cents"] >= 0).all()
    assert result.bill_cents == round(price_a * count * 100) + round(price_b * 100)
    assert result.requests[result.requests["pod"] == "c"]["cents"].isna().all()
