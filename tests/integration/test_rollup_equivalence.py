"""Cost and SLOs from the store's roll-up are exactly what they are from the raw rows.

Allocation is linear in work-seconds within a price regime, and the roll-up keeps work,
busy time and tokens as integer sums per (pod, hour, tenant, feature, model), so the sums
per group are equal however the rows were batched into the store. Random ledgers are
written in several batches with a refresh after each (late rows, hours recomputed), then
every grouping is compared to the cent with the same ledger summarised at once in memory.
"""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import rollup, usage
from collectors.store import Store
from collectors.tables import LedgerRow
from kpi_mapping import data
from kpi_mapping import slo as slo_eval
from kpi_mapping.cost import allocate, allocate_usage, by, by_role, per_million_tokens
from specs.slo import slo

pytestmark = pytest.mark.integration
T0 = datetime(2026, 10, 1, tzinfo=UTC)
END = T0 + timedelta(hours=4)
SLOS = (slo("a", "availability", 0.99), slo("t", "ttft", 0.9, 0.5),
        slo("i", "itl", 0.9, 0.05))
OUTCOMES = (("ok", 200), ("ok", 200), ("ok", 200), ("error", 503), ("rejected", 429),
            ("cancelled", 499))


def _gpus() -> pd.DataFrame:
    rows = [("a", 2, 4.10, T0 - timedelta(days=1), T0 + timedelta(hours=2)),  # a price cut
            ("a", 2, 3.25, T0 + timedelta(hours=2), None),
            ("b", 1, 0.85, T0 - timedelta(days=1), None),
            ("pf", 1, 2.00, T0 - timedelta(days=1), None)]
    return pd.DataFrame([{"pod": p, "gpu_type": "H100", "gpu_count": n,
                          "dollars_per_gpu_hour": price, "valid_from": pd.Timestamp(lo),
                          "valid_to": pd.Timestamp(hi) if hi else pd.NaT}
                         for p, n, price, lo, hi in rows])


def row(n: int, pod: str, start_us: int, e2e: float, ttft: float | None, gaps: list[float],
        tenant: str, feature: str, outcome: int, prompt: int, cached: int) -> dict[str, Any]:
    arrival = T0 + timedelta(microseconds=start_us)
    name, status = OUTCOMES[outcome]
    return {"source": "sidecar", "request_id": f"r{n}", "tenant": tenant, "model": "m",
            "feature": feature, "endpoint": "chat", "pod": pod, "gpu": "", "arrival": arrival,
            "finish": arrival + timedelta(seconds=e2e), "outcome": name, "http_status": status,
            "time_to_first_token": ttft, "e2e_latency": e2e, "queue_time": e2e / 10,
            "prefill_time": None, "decode_time": None, "prompt_tokens": prompt,
            "output_tokens": len(gaps) + 1, "cached_prompt_tokens": min(cached, prompt),
            "mean_inter_token_latency": sum(gaps) / len(gaps) if gaps else None,
            "itl_counts": usage.gap_counts(gaps), "role": ROLES.get(pod, "")}


# P/D: pod pf prefills for pod b, which decodes; pod a does both
ROLES = {"pf": "prefill", "b": "decode"}


requests = st.lists(st.tuples(
    st.sampled_from(["a", "b", "pf"]), st.integers(0, 4 * 3600 * 10**6 - 1),
    st.floats(0.001, 900.0), st.one_of(st.none(), st.floats(0.0, 2.0)),
    st.lists(st.floats(0.001, 0.2), max_size=6), st.sampled_from(["t1", "t2", "t3"]),
    st.sampled_from(["chat", "search"]), st.integers(0, len(OUTCOMES) - 1),
    st.integers(0, 5000), st.integers(0, 5000)), min_size=1, max_size=40)


def check(store: Store, rows: list[dict[str, Any]], batches: int) -> None:
    size = -(-len(rows) // batches)
    for start in range(0, len(rows), size):  # late batches recompute hours already rolled up
        with store.session() as session:
            store.insert_ignore(session, LedgerRow, rows[start:start + size])
            session.commit()
        rollup.refresh(store)
    raw = pd.DataFrame(rows)
    memory_hours, memory_usage = usage.from_ledger(raw)
    stored_usage = data.usage(store, T0, END)
    stored_hours = data.pod_hours(store, T0, END)
    # the stored roll-up is the summary of the raw rows, integer for integer
    keys = list(usage.KEYS)
    left = stored_usage.sort_values(keys).reset_index(drop=True)
    right = memory_usage[memory_usage["hour"] < pd.Timestamp(END)].sort_values(keys)
    pd.testing.assert_frame_equal(left[list(usage.COUNTS)], right.reset_index(
        drop=True)[list(usage.COUNTS)], check_dtype=False)
    assert left["itl_counts"].tolist() == right["itl_counts"].tolist()
    # cost: every grouping to the cent, and $/M, from the roll-up as from raw rows
    gpus = _gpus()
    from_store = allocate_usage(stored_usage, stored_hours, gpus, T0, END)
    from_raw = allocate(raw, gpus, T0, END)
    assert (from_store.bill_cents, from_store.allocated_cents) == (
        from_raw.bill_cents, from_raw.allocated_cents)
    pd.testing.assert_frame_equal(from_store.pods, from_raw.pods)
    for key in ("tenant", "feature", "model", "pod", ["tenant", "feature"]):
        pd.testing.assert_frame_equal(by(from_store, key), by(from_raw, key))
    pd.testing.assert_frame_equal(per_million_tokens(from_store), per_million_tokens(from_raw))
    # SLOs: the same events, bad events and budget
    stored, memory = slo_eval.Usage.of(stored_usage), slo_eval.Usage.of(memory_usage)
    for target in SLOS:
        assert slo_eval.status(stored, target, end=END) == slo_eval.status(
            memory, target, end=END), target.name
    # busy time per pod-hour, the roll-up's other half, to the microsecond
    memory_busy = memory_hours[memory_hours["hour"] < pd.Timestamp(END)].sort_values(
        ["pod", "hour"])["busy_seconds"].tolist()
    assert stored_hours.sort_values(["pod", "hour"])["busy_seconds"].tolist() == memory_busy
    for name in ("requests", "prefills", "role"):  # prefills counted apart, roles kept
        assert stored_hours.sort_values(["pod", "hour"])[name].tolist() == memory_hours[
            memory_hours["hour"] < pd.Timestamp(END)].sort_values(["pod", "hour"])[
            name].tolist(), name
    pd.testing.assert_frame_equal(by_role(from_store), by_role(from_raw))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests, st.integers(1, 4), st.sampled_from([1, 7, rollup.CHUNK_ROWS]))
def test_the_roll_up_prices_and_judges_what_raw_rows_do(items: list[tuple[Any, ...]],
                                                        batches: int, chunk_rows: int) -> None:
    """Also when memory bounds cut the recompute into chunks of single hours (1 row) or a
    few hours (7 rows) and read each 3 rows at a time."""
    rows = [row(n, *item) for n, item in enumerate(items)]
    with tempfile.TemporaryDirectory() as folder, \
            mock.patch.object(rollup, "CHUNK_ROWS", chunk_rows), \
            mock.patch.object(rollup, "READ_ROWS", 3 if chunk_rows < 100 else rollup.READ_ROWS):
        store = Store.open(str(Path(folder) / "store.sqlite"))
        try:
            check(store, rows, batches)
        finally:
            store.close()


def test_on_postgresql_too(store: Store) -> None:
    rng = random.Random(7)
    rows = [row(n, rng.choice(["a", "b", "pf"]), rng.randrange(4 * 3600 * 10**6),
                rng.uniform(0.01, 900),
                rng.choice([None, rng.uniform(0, 2)]),
                [rng.uniform(0.001, 0.2) for _ in range(rng.randrange(6))],
                rng.choice(["t1", "t2", "t3"]), rng.choice(["chat", "search"]),
                rng.randrange(len(OUTCOMES)), rng.randrange(5000), rng.randrange(5000))
            for n in range(300)]
    check(store, rows, 3)
