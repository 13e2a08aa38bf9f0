"""A telemetry process for the journal kill test: the ledger and the outbox fed from a
journal until killed. python -m tests.integration.journal_worker JOURNAL STORE_URL OUTBOX
(LLMKPI_TEST_SEARCH_PATH: a PostgreSQL schema)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from collectors.ledger import LedgerConsumer
from collectors.store import Store
from engine_shim import journal
from engine_shim.tailer import Tailer
from exporters.mixpanel import MixpanelJournalConsumer, MixpanelSink, ProductEvents
from exporters.outbox import Outbox


def main() -> None:
    folder, url, outbox_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    schema = os.environ.get("LLMKPI_TEST_SEARCH_PATH")
    store = Store.open(url, connect_args={"options": f"-csearch_path={schema}"}
                       if schema else None)
    name = journal.journal_id(folder)
    outbox = Outbox(outbox_path)
    consumers = [LedgerConsumer(store, name),
                 MixpanelJournalConsumer(MixpanelSink(ProductEvents(outbox)), name)]
    tailer = Tailer(folder, consumers, batch=7, poll=0.005, settle=0.05)
    tailer.start()
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
