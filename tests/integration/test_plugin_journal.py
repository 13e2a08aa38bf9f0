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


def test_the_telemetry_process_loads_neither_pandas_nor_numpy(tmp_path: Path) -> None:
    """The sidecar's telemetry process (and the vLLM plugin) with every sink on: journal,
    ledger, outbox, Prometheus. pandas and numpy are ~110 MiB of the KPI layer's; the sinks
    need neither (collectors/bins.py counts the ITL bins in plain Python)."""
    import subprocess
    import sys

    script = f"""
import sys
from pathlib import Path
from exporters.prometheus import PrometheusExporter
from llmkpi.serve import build_journal
from llmkpi.settings import Env, SinkSettings
env = Env({{"LLMKPI_LEDGER": "true", "LLMKPI_DATABASE_URL": "{tmp_path / 'l.sqlite'}",
           "LLMKPI_OUTBOX": "{tmp_path / 'o.sqlite'}"}})
sinks = SinkSettings.from_env(env, "test")
wiring = build_journal(Path("{tmp_path / 'journal'}"), sinks, PrometheusExporter())
wiring.close()
print(sorted(m for m in ("pandas", "numpy") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
