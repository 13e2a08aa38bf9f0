"""Cost allocation: hand-computed nano-dollars and cents on small ledgers; on random ones,
every grouping plus idle is the bill to the cent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors import usage
from kpi_mapping import cost_report
from kpi_mapping.cost import (
    allocate,
    by,
    fleet_per_million,
    margin_by_tenant,
    over_hours,
    per_million_tokens,
    regimes,
)
from kpi_mapping.periods import Period

T0 = datetime(2026, 10, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def request(pod: str, start_s: float, prefill: float | None, decode: float | None,
            *, tenant: str = "acme", prompt: int = 100, cached: int = 0, output: int = 50,
            e2e: float | None = None, ttft: float | None = None,
            model: str = "m", feature: str = "chat") -> dict[str, Any]:
    return {"pod": pod, "model": model, "tenant": tenant, "feature": feature,
            "arrival": pd.Timestamp(T0 + timedelta(seconds=start_s)), "finish": None,
            "outcome": "ok", "time_to_first_token": ttft if ttft is not None else prefill,
            "e2e_latency": e2e if e2e is not None else (prefill or 0) + (decode or 0),
            "queue_time": 0.0, "prefill_time": prefill, "decode_time": decode,
            "prompt_tokens": prompt, "cached_prompt_tokens": cached, "output_tokens": output}


def inventory(*rows: tuple[str, float, int]) -> pd.DataFrame:
    return pd.DataFrame([{"pod": pod, "gpu_type": "H100", "gpu_count": count,
                          "dollars_per_gpu_hour": price, "valid_from": pd.Timestamp(T0),
                          "valid_to": pd.NaT} for pod, price, count in rows])


def test_hand_computed_nano_dollars_and_cents() -> None:
    ledger = pd.DataFrame([
        request("p", 0, 10, 90, tenant="acme"),                         # busy 0-100 s
        request("p", 50, 30, 70, prompt=100, cached=50, tenant="beta"),  # 50-150 s, half cached
        request("nowhere", 10, 1, 1),                                    # a pod with no price
    ])
    result = allocate(ledger, inventory(("p", 3.60, 1)), T0, T1)
    (pod,) = result.pods.to_dict("records")
    # bill = 1 h × 1 GPU × $3.60 = 360 ¢; busy = union [0, 150) = 150 GPU-s
    assert pod["bill_cents"] == 360 and pod["busy_gpu_s"] == 150
    # used = $3.60 × 150 / 3600 = 150,000,000 n$ = 15 ¢; idle 345 ¢
    assert pod["allocated_cents"] == 15 and pod["idle_cents"] == 345
    priced = result.usage[result.usage["pod"] == "p"]  # one usage row per tenant here
    # weights: r1 prefill 10, decode 90; r2 prefill 30 × 50 % uncached = 15, decode 70 (185)
    # 150e6 × 10/185 = 8,108,108.1; × 15/185 = 12,162,162.2: input is never rounded away
    assert priced["input_nano"].tolist() == [8_108_108, 12_162_162]
    # × 90/185 = 72,972,972.97; × 70/185 = 56,756,756.76: the two largest remainders take
    # the 2 n$ the floors left
    assert priced["output_nano"].tolist() == [72_972_973, 56_756_757]
    assert result.usage[result.usage["pod"] == "nowhere"]["input_nano"].isna().all()
    # fully loaded: idle 3,450,000,000 n$ shared by busy cost (81,081,081 : 68,918,919),
    # = × 23 exactly: 1,864,864,863 and 1,585,135,137
    assert (priced["loaded_input_nano"] + priced["loaded_output_nano"]).tolist() == [
        1_945_945_944, 1_654_054_056]
    tenants = by(result, "tenant").set_index("tenant")
    # busy ¢ over [in 0.811, 1.216, out 7.297, 5.676] of 15: floors 0+1+7+5 = 13, the two
    # largest remainders (.811 acme in, .676 beta out) take one each
    assert tenants[["input_cents", "output_cents", "cents"]].to_dict("index") == {
        "acme": {"input_cents": 1, "output_cents": 7, "cents": 8},
        "beta": {"input_cents": 1, "output_cents": 6, "cents": 7}}
    # loaded ¢ over [in 19.459, 29.189, out 175.135, 136.216] of 360: floors 359, .459 wins
    assert tenants["loaded_cents"].to_dict() == {"acme": 195, "beta": 165}


def test_sidecar_rows_without_engine_times_use_ttft_and_the_rest() -> None:
    ledger = pd.DataFrame([request("p", 0, None, None, ttft=1.0, e2e=4.0)])
    result = allocate(ledger, inventory(("p", 36.0, 1)), T0, T1)
    row = result.usage.iloc[0]
    # used = $36 × 4 s / 3600 s = $0.04 = 40,000,000 n$: 1 s prefill, 3 s decode
    assert (row["input_nano"], row["output_nano"]) == (10_000_000, 30_000_000)


def test_each_busy_second_at_the_price_and_count_in_force() -> None:
    t2 = T0 + timedelta(hours=2)
    gpus = pd.DataFrame([
        {"pod": "p", "gpu_type": "H100", "gpu_count": 2, "dollars_per_gpu_hour": 2.0,
         "valid_from": pd.Timestamp(T0 - timedelta(days=1)), "valid_to": pd.Timestamp(T1)},
        {"pod": "p", "gpu_type": "H100", "gpu_count": 1, "dollars_per_gpu_hour": 1.0,
         "valid_from": pd.Timestamp(T1), "valid_to": pd.NaT}])
    ledger = pd.DataFrame([request("p", 0, 0, 600, tenant="acme"),       # hour 0: 2 × $2
                           request("p", 6000, 0, 600, tenant="beta")])   # hour 1: 1 × $1
    result = allocate(ledger, gpus, T0, t2)
    # bill = 1 h × 2 × $2 + 1 h × 1 × $1 = $5.00
    assert result.bill_cents == 500
    (pod,) = result.pods.to_dict("records")
    # busy GPU-s = 600 s × 2 + 600 s × 1 = 1800 of 3600 × 2 + 3600 × 1 = 10800 provisioned
    assert (pod["busy_gpu_s"], pod["provisioned_gpu_s"]) == (1800.0, 10800.0)
    # acme: $4 × 1200/7200 = 666,666,666.7 n$; beta: $1 × 600/3600 = 166,666,666.7 n$
    # (an average price, $5 × 600 s / 10800 s, would charge each $0.278)
    assert result.usage["output_nano"].tolist() == [666_666_666, 166_666_666]
    # idle 4,166,666,668 n$ : allocated 833,333,332 of 500 ¢ → 416.67 : 83.33 → 417 / 83
    assert (pod["idle_cents"], pod["allocated_cents"]) == (417, 83)
    assert cost_report.utilization(result) == pytest.approx(1800 / 10800)


def test_a_regime_that_starts_inside_an_hour_takes_its_share_of_the_hour() -> None:
    half = pd.Timestamp(T0 + timedelta(minutes=30))
    gpus = pd.DataFrame([
        {"pod": "p", "gpu_type": "H100", "gpu_count": 2, "dollars_per_gpu_hour": 2.0,
         "valid_from": pd.Timestamp(T0), "valid_to": half},
        {"pod": "p", "gpu_type": "H100", "gpu_count": 1, "dollars_per_gpu_hour": 1.0,
         "valid_from": half, "valid_to": pd.NaT}])
    ledger = pd.DataFrame([request("p", 0, 0, 600, tenant="acme"),       # 0-10 min
                           request("p", 2400, 0, 600, tenant="beta")])   # 40-50 min
    result = allocate(ledger, gpus, T0, T1)
    # the hour is the roll-up's unit: its 1200 busy s are spread evenly, half in each regime
    # bill = 0.5 h × 2 × $2 + 0.5 h × 1 × $1 = $2.50; busy GPU-s 600 × 2 + 600 × 1 = 1800
    (pod,) = result.pods.to_dict("records")
    assert (result.bill_cents, pod["busy_gpu_s"]) == (250, 1800.0)
    # first regime: $2 × 1200/3600 = 666,666,666 n$, split 1:1 (half of each one's 600 s)
    # = 333,333,333 each; second: $0.50 × 600/1800 = 166,666,666 → 83,333,333 each
    assert result.usage["output_nano"].tolist() == [416_666_666, 416_666_666]


def test_fully_loaded_and_busy_time_per_million_tokens_and_margin() -> None:
    ledger = pd.DataFrame([request("p", 0, 1800, 1800, prompt=1_000_000, output=500_000,
                                   tenant="acme")])
    # p: $10 for the hour, busy all of it; q: $2, never used (idle $2)
    result = allocate(ledger, inventory(("p", 10.0, 1), ("q", 2.0, 1)), T0, T1)
    rates = per_million_tokens(result).iloc[0]
    # busy-time: $5 prefill / 1 M in, $5 decode / 0.5 M out, $10 / 1.5 M
    assert (rates["busy_input_per_m"], rates["busy_output_per_m"]) == (5.0, 10.0)
    assert rates["busy_blended_per_m"] == pytest.approx(10 / 1.5)
    # fully loaded: the $2 idle shared: $6 / 1 M in, $6 / 0.5 M out, $12 / 1.5 M = $8
    assert (rates["loaded_input_per_m"], rates["loaded_output_per_m"]) == (6.0, 12.0)
    assert fleet_per_million(result)["fully_loaded"] == pytest.approx(8.0)
    revenue = pd.DataFrame([{"tenant": "acme", "revenue": 40.0},
                            {"tenant": "quiet", "revenue": 5.0}])
    margin = margin_by_tenant(result, revenue).set_index("tenant")
    # fully loaded (default): (40 − 12) / 40 = 0.70; busy-time (40 − 10) / 40 = 0.75
    assert margin.loc["acme", "margin"] == pytest.approx(0.70)
    assert margin.loc["acme", "margin_busy_time"] == pytest.approx(0.75)
    assert margin.loc["quiet", "margin"] == 1.0 and (margin["basis"] == "fully_loaded").all()
    busy = margin_by_tenant(result, revenue, "busy_time").set_index("tenant")
    assert busy.loc["acme", "margin"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="margin basis"):
        margin_by_tenant(result, revenue, "gross")


def test_overlapping_inventory_rows_are_refused() -> None:
    gpus = inventory(("p", 2.0, 1), ("p", 3.0, 1))  # two open rows from the same instant
    gpus.loc[1, "valid_from"] = pd.Timestamp(T0 + timedelta(minutes=5))
    with pytest.raises(ValueError, match=r"pod p: a row from .* overlaps"):
        regimes(gpus, T0, T1)


def test_busy_time_is_the_union_per_hour() -> None:
    us = 1_000_000
    starts = np.array([5, 0, 20, 21, 3590], dtype=np.int64) * us
    ends = np.array([15, 10, 30, 25, 3610], dtype=np.int64) * us
    # [0, 15) and [20, 30) = 25 s; [3590, 3610) = 10 s in each hour
    assert (usage.busy_by_hour(starts, ends, 0, 2) // us).tolist() == [35, 10]


requests_strategy = st.lists(st.tuples(
    st.sampled_from(["a", "b", "c"]), st.floats(0, 3600), st.floats(0, 600),
    st.floats(0, 600), st.integers(0, 4000), st.integers(0, 4000),
    st.sampled_from(["t1", "t2", "t3"]), st.sampled_from(["m1", "m2"]),
    st.sampled_from(["chat", "search"])), max_size=60)


@settings(max_examples=60, deadline=None)
@given(requests_strategy, st.floats(0.01, 40.0), st.floats(0.01, 40.0), st.integers(1, 8),
       st.integers(0, 3599), st.integers(1, 8))
def test_every_grouping_plus_idle_is_the_bill(rows: list[tuple[Any, ...]], price_a: float,
                                              price_b: float, count: int, change_s: int,
                                              count_after: int) -> None:
    ledger = pd.DataFrame([request(pod, start, pre, dec, prompt=prompt,
                                   cached=min(cached, prompt), tenant=tenant, model=model,
                                   feature=feature)
                           for pod, start, pre, dec, prompt, cached, tenant, model, feature
                           in rows] or [request("a", 0, 0, 0)])
    # pod a changes price and count inside the hour
    change = pd.Timestamp(T0 + timedelta(seconds=change_s))
    gpus = pd.DataFrame([
        {"pod": "a", "gpu_count": count, "dollars_per_gpu_hour": price_a,
         "valid_from": pd.Timestamp(T0), "valid_to": change},
        {"pod": "a", "gpu_count": count_after, "dollars_per_gpu_hour": price_a / 2,
         "valid_from": change, "valid_to": pd.NaT},
        {"pod": "b", "gpu_count": 1, "dollars_per_gpu_hour": price_b,
         "valid_from": pd.Timestamp(T0), "valid_to": pd.NaT}])
    result = allocate(ledger, gpus, T0, T1)
    bill, idle = result.bill_cents, result.idle_cents
    for key in ("tenant", "feature", "model", "pod"):
        table = by(result, key)
        assert int(table["cents"].sum()) + idle == bill, key
        assert int(table["loaded_cents"].sum()) == bill or table.empty, key
        assert (table["input_cents"] + table["output_cents"] == table["cents"]).all()
    assert int(result.pods["allocated_cents"].sum()) + idle == bill
    assert (result.pods["idle_cents"] >= 0).all() and (result.pods["allocated_cents"] >= 0).all()
    assert (result.pods["busy_gpu_s"] <= result.pods["provisioned_gpu_s"] + 1e-6).all()
    period = Period("hour", T0, T1, "2026-10-01T00")
    focus = cost_report.focus_rows(result, period)
    assert round(sum(float(r["BilledCost"]) for r in focus) * 100) == bill
    # fully loaded $/M × tokens is the bill (to the cent) whenever a request was priced
    priced = result.priced
    tokens = float(priced["input_tokens"].sum() + priced["output_tokens"].sum())
    per_m = fleet_per_million(result)["fully_loaded"]
    if per_m is not None and result.allocated_cents:
        assert round(per_m * tokens / 1e6 * 100) == bill
    assert result.usage[result.usage["pod"] == "c"]["input_nano"].isna().all()


def test_summed_over_hours_every_grouping_is_unchanged() -> None:
    two_hours = T0 + timedelta(hours=2)
    ledger = pd.DataFrame([
        request("p", 0, 10, 90, tenant="acme"),          # hour 0
        request("p", 3700, 20, 80, tenant="acme"),       # hour 1: the same group
        request("p", 3800, 5, 5, tenant="beta", model="n"),
        request("nowhere", 10, 1, 1, tenant="acme"),     # no price: stays unpriced
    ])
    result = allocate(ledger, inventory(("p", 3.60, 1)), T0, two_hours)
    summed = over_hours(result)
    # acme on p in hours 0 and 1 becomes one row; beta on p; acme on the unpriced pod
    assert len(result.usage) == 4 and len(summed.usage) == 3
    assert summed.unpriced["pod"].tolist() == ["nowhere"]
    for key in ("tenant", "feature", "model", "pod", ["tenant", "model"]):
        pd.testing.assert_frame_equal(by(summed, key), by(result, key))
    assert fleet_per_million(summed) == fleet_per_million(result)
    assert (summed.bill_cents, summed.allocated_cents, summed.requests) == (
        result.bill_cents, result.allocated_cents, 4)
    empty = over_hours(allocate(ledger.iloc[:0], inventory(("p", 3.60, 1)), T0, two_hours))
    assert by(empty, "tenant").empty and empty.bill_cents == 720  # 2 h × $3.60, all idle
