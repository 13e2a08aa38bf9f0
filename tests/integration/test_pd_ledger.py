"""P/D disaggregation end to end, both data planes: the decode pod's sidecar records what
the client saw, the prefill pod's sidecar (in the path llm-d's routing sidecar takes, the
simulator's --prefill-via) records the prefill it served. One ledger holds both; each
request is counted once, the prefill pod's GPU time is charged to prompt tokens and the
decode pod's to output tokens."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from collectors import rollup
from collectors.store import Store
from collectors.tables import LedgerHour, LedgerRow
from engine_shim.engine_metrics import parse_exposition
from kpi_mapping import data
from kpi_mapping.cost import allocate_usage, by_role, per_million_tokens
from llmkpi import processes
from tests.integration.helpers import sidecar, simulator
from tests.integration.test_live_stack import drive

pytestmark = pytest.mark.integration


def _metric(text: str, name: str) -> float:
    return sum(value for sample, _labels, value in parse_exposition(text) if sample == name)


def _serve_pd(tmp_path: Path, database: str) -> tuple[int, str, str, pd.DataFrame]:
    """Load through a P/D stack; (requests served, decode and prefill /metrics, ledger)."""
    prefill_port = processes.free_port()
    ledger = ("--ledger",)
    with simulator(tmp_path, "h100-llama3-8b", 5, "--pd", "1", "--per-request-metrics",
                   "--prefill-via", f"http://127.0.0.1:{prefill_port}") as upstream, \
            sidecar(tmp_path, upstream + "/prefill", *ledger, port=prefill_port,
                    env={"LLMKPI_ROLE": "prefill", "LLMKPI_POD": "prefill-0",
                         "LLMKPI_DATABASE_URL": database}) as prefill, \
            sidecar(tmp_path, upstream, *ledger,
                    env={"LLMKPI_ROLE": "decode", "LLMKPI_POD": "decode-0",
                         "LLMKPI_DATABASE_URL": database}) as decode:
        served = drive(decode.url, 6, seed=4) + 1  # and the load generator's warm-up
        decode_text = decode.metrics_text(requests=served)
        prefill_text = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the prefill sidecar counts as it goes
            prefill_text = prefill.metrics_text()
            if _metric(prefill_text, "llmkpi_remote_prefills_total") >= served:
                break
            time.sleep(0.2)
        store = Store.open(database)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:  # both ledgers flush within a second or so
                with store.engine.connect() as conn:
                    rows = pd.read_sql(select(LedgerRow.pod, LedgerRow.role,
                                              LedgerRow.prompt_tokens), conn)
                if len(rows) >= 2 * served:
                    break
                time.sleep(0.3)
        finally:
            store.close()
    return served, decode_text, prefill_text, rows


def test_a_pd_request_is_counted_once_and_priced_per_role(tmp_path: Path,
                                                         data_plane: str) -> None:
    database = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Store.open(database).close()
    served, decode_text, prefill_text, rows = _serve_pd(tmp_path, database)
    assert served >= 10
    # the client's requests are counted by the decode pod alone; the prefill pod counts its
    # prefills, the same prompts, apart
    assert _metric(decode_text, "llmkpi_requests_total") == served
    assert _metric(prefill_text, "llmkpi_requests_total") == 0
    assert _metric(prefill_text, "llmkpi_remote_prefills_total") == served
    assert _metric(prefill_text, "llmkpi_remote_prefill_prompt_tokens_total") == \
        _metric(decode_text, "llmkpi_prompt_tokens_total") > 0
    roles = rows.groupby(["pod", "role"]).size().to_dict()
    assert roles == {("decode-0", "decode"): served, ("prefill-0", "prefill"): served}

    store = Store.open(database)
    try:
        rollup.refresh(store)
        with store.engine.connect() as conn:
            hours = pd.read_sql(select(LedgerHour), conn).groupby("pod").agg(
                requests=("requests", "sum"), prefills=("prefills", "sum"),
                role=("role", "max"))
        assert hours.to_dict("index") == {
            "decode-0": {"requests": served, "prefills": 0, "role": "decode"},
            "prefill-0": {"requests": 0, "prefills": served, "role": "prefill"}}
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
            hours=1)
        end = start + timedelta(hours=3)
        gpus = pd.DataFrame([{"pod": pod, "gpu_type": "H100", "gpu_count": 1,
                              "dollars_per_gpu_hour": 3.0, "valid_from": pd.Timestamp(start),
                              "valid_to": pd.NaT} for pod in ("prefill-0", "decode-0")])
        allocation = allocate_usage(data.usage(store, start, end, bins=False),
                                    data.pod_hours(store, start, end), gpus, start, end)
    finally:
        store.close()
    priced = allocation.priced.set_index("pod")
    # the prefill pod's cost is all input, the decode pod's all output
    assert (priced.loc[["prefill-0"], "output_nano"] == 0).all()
    assert (priced.loc[["prefill-0"], "input_nano"] > 0).all()
    assert (priced.loc[["decode-0"], "input_nano"] == 0).all()
    assert (priced.loc[["decode-0"], "output_nano"] > 0).all()
    model = per_million_tokens(allocation).iloc[0]
    assert model["requests"] == served  # once, not twice
    prompt = int(rows.loc[rows["role"] == "decode", "prompt_tokens"].sum())
    assert model["input_tokens"] == prompt
    table = by_role(allocation).set_index("role")
    assert table.loc["prefill", "tokens"] == prompt and table.loc["prefill", "prefills"] == served
    assert table.loc["decode", "requests"] == served
    assert int(table["bill_cents"].sum()) == allocation.bill_cents
    # the decode engine's queue holds the KV wait: every request waited a little
    assert table.loc["decode", "queue_s_per_request"] > 0
