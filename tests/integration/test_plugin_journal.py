"""The vLLM plugin with LLMKPI_PLUGIN_JOURNAL: records go to a journal on vLLM's loop and
the ledger reads it at its committed position, as on the sidecar."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlmodel import select

from collectors.store import Store
from collectors.tables import LedgerRow
from engine_shim.journal import JournalWriter
from exporters.prometheus import PrometheusExporter
from llmkpi.serve import plugin_sink
from llmkpi.settings import Env, PluginSettings
from tests.integration.test_ledger import RECORD

pytestmark = pytest.mark.integration


def test_the_plugin_journals_and_its_ledger_follows(tmp_path: Path) -> None:
    database = tmp_path / "ledger.sqlite"
    env = Env({"LLMKPI_PLUGIN_JOURNAL": str(tmp_path / "journal"), "LLMKPI_LEDGER": "true",
               "LLMKPI_DATABASE_URL": str(database), "LLMKPI_PLUGIN_METRICS_PORT": "0"})
    settings = PluginSettings.from_env(env)
    sink = plugin_sink(settings, PrometheusExporter())  # what llmkpi.vllm_entry shares
    assert isinstance(sink, JournalWriter)
    for n in range(30):
        sink.record(replace(RECORD, request_id=f"p{n}", source="plugin"))
    lines = (tmp_path / "journal" / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 30  # on disk before any sink has seen them: a kill now loses none
    store = Store.open(str(database))
    deadline = time.monotonic() + 10
    while True:
        with store.session() as session:
            got = session.exec(select(LedgerRow.request_id)).all()
        if len(got) == 30 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sorted(got) == sorted(f"p{n}" for n in range(30))
