"""Importers stream: a file larger than a batch and larger than the in-memory key set is
still refused whole for one bad line at its end, on SQLite and PostgreSQL; a repeat found
after its key moved to disk names both lines; whole-document formats are capped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.importers import base
from collectors.importers.base import Unique, run_import
from collectors.importers.ours import IMPORTERS
from collectors.store import Store
from tests.integration.test_store import assert_rejected

pytestmark = pytest.mark.integration
HEADER = "request_id,tenant,model,arrival,finish,outcome,http_status,output_tokens\n"


def ledger_csv(path: Path, count: int, tail: str = "") -> Path:
    with path.open("w") as out:
        out.write(HEADER)
        for index in range(count):
            out.write(f"q{index},acme,m8b,2026-10-01T00:00:00Z,2026-10-01T00:00:01Z,ok,200,"
                      f"{index}\n")
        out.write(tail)
    return path


def test_a_bad_last_line_after_many_batches_leaves_the_store_as_it_was(
        store: Store, tmp_path: Path) -> None:
    run_import(store, IMPORTERS["people"], Path(__file__).parents[1] / "data" / "import"
               / "people.csv")
    # 2,500 good rows (two full batches of 1,000 written inside the transaction), then a bad
    # one on line 2,502 (line 1 is the header)
    path = ledger_csv(tmp_path / "big.csv", 2500,
                      "q-bad,acme,m8b,2026-10-01T00:00:00Z,2026-10-01T00:00:01Z,ok,999,1\n")
    assert_rejected(store, "ledger", path, 2502, "http_status", "not an HTTP status code")


def test_a_good_file_of_many_batches_is_written_whole(store: Store, tmp_path: Path) -> None:
    seen: list[int] = []
    result = run_import(store, IMPORTERS["ledger"], ledger_csv(tmp_path / "ok.csv", 2500),
                        progress=seen.append)
    assert result.rows == 2500
    assert seen == [1000, 2000, 2500]  # progress after each batch
    with store.engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT count(*), sum(output_tokens) FROM ledger").one()
    assert tuple(total) == (2500, 3123750)  # sum of 0..2499 = 2499 * 2500 / 2


@pytest.mark.parametrize(("first", "second"), [(5, 7), (2, 11), (12, 13)])
def test_a_repeat_is_found_wherever_its_key_lives(store: Store, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  first: int, second: int) -> None:
    """With chunks of 4 keys, (5, 7) repeats within one chunk in memory, (2, 11) across a
    chunk moved to disk, (12, 13) in the last chunk that is compared at the end."""
    monkeypatch.setattr(Unique, "CHUNK", 4)
    path = tmp_path / "dup.jsonl"
    lines = []
    for line in range(1, 15):
        ident = f"r{first}" if line == second else f"r{line}"
        lines.append(json.dumps({"request_id": ident, "tenant": "t", "model": "m",
                                 "arrival": "2026-10-01T00:00:00Z",
                                 "finish": "2026-10-01T00:00:01Z", "outcome": "ok",
                                 "http_status": 200}))
    path.write_text("\n".join(lines) + "\n")
    assert_rejected(store, "ledger", path, second, "request_id",
                    f"r{first} repeats line {first}")


def test_unique_keeps_few_keys_in_memory(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Unique, "CHUNK", 100)
    unique = Unique("id")
    for line in range(1, 1001):
        unique.check_at(tmp_path, line, f"k{line}")
        assert len(unique.recent) < 100  # the rest moved to the on-disk table
    unique.finish()


def test_a_whole_document_file_over_the_cap_says_what_to_use(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "MAX_DOCUMENT_BYTES", 1024 * 1024)
    path = tmp_path / "incidents.json"
    path.write_text(json.dumps({"incidents": [{"id": f"P{i}", "title": "x" * 100}
                                              for i in range(12_000)]}))
    assert_rejected(store, "incidents", path, 1, "(file)", "export it as CSV instead")
    junit = tmp_path / "junit.xml"
    junit.write_text("<testsuites>" + "<testsuite/>" * 200_000 + "</testsuites>")
    assert_rejected(store, "junit", junit, 1, "(file)", "at most 1 MiB")
