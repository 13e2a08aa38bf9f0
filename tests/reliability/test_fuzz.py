"""Property-based fuzzing of every file importer and of the SSE parser.

Each importer gets its own valid sample file mutated at random (cut, doubled, spliced with
odd bytes, cells dropped or added): it must either return rows or refuse the file with a
BadInputError naming file and line, never any other exception. The SSE splitter must give
back exactly the bytes it was fed, cut anywhere; the event inspector must never raise.
CI runs a fixed, derandomised budget; `make fuzz` sets LLMKPI_FUZZ_EXAMPLES far higher.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.importers.base import BadInputError
from collectors.importers.ours import IMPORTERS
from engine_shim.stream import SSESplitter, inspect_event

DATA = Path(__file__).resolve().parents[1] / "data" / "import"
BUDGET = settings(max_examples=int(os.environ.get("LLMKPI_FUZZ_EXAMPLES", "60")),
                  derandomize="LLMKPI_FUZZ_EXAMPLES" not in os.environ, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])
LEDGER_CSV = ("request_id,tenant,model,pod,arrival,finish,outcome,http_status,"
              "time_to_first_token,prompt_tokens,output_tokens\n"
              "q1,acme,m8b,p1,2026-10-01T00:00:00Z,2026-10-01T00:00:02Z,ok,200,0.3,10,5\n"
              "q2,beta,m8b,p1,2026-10-01T00:01:00Z,2026-10-01T00:01:03Z,error,500,,12,\n")
SAMPLES = {  # kind -> a valid file of it (git and outbox read a repository or a database)
    "people": "people.csv", "finance": "finance.csv", "gpus": "gpus.csv",
    "junit": "junit.xml", "coverage": "coverage.xml", "mixpanel": "mixpanel-export.jsonl",
    "incidents": "incidents.csv", "deployments": "deployments.csv",
    "work-items": "jira-export.csv", "releases": "releases.csv",
    "tenant-revenue": "tenant-revenue.csv", "integrations": "integrations.csv",
}
ODD = st.sampled_from([b"", b",", b'"', b"\n", b"\r\n", b"\x00", b"\xff\xfe", b"\xc3",
                       b"-1", b"1e309", b"NaN", b"9" * 30, b"2026-13-45", b"<", b"]]>",
                       b"{", b"\t", "é".encode(), b"true", b"null"])


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["cut", "insert", "delete", "double", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if action == "insert":
            data[at:at] = draw(ODD)
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 12))]
        elif action == "double":
            end = data.find(b"\n", at)
            data[at:at] = data[at:end + 1 if end >= 0 else len(data)]
        elif action == "truncate":
            del data[at:]
        else:  # a cell or a line boundary moved
            data[at:at] = draw(st.sampled_from([b",", b"\n", b",,", b'","']))
    return bytes(data)


def sample(kind: str, tmp: Path) -> bytes:
    if kind == "ledger":
        return LEDGER_CSV.encode()
    return (DATA / SAMPLES[kind]).read_bytes()


@pytest.mark.parametrize("kind", [*SAMPLES, "ledger"])
def test_a_mutated_file_is_loaded_or_refused_by_line(kind: str, tmp_path: Path) -> None:
    importer = IMPORTERS[kind]
    suffix = ".csv" if kind == "ledger" else Path(SAMPLES[kind]).suffix
    original = sample(kind, tmp_path)
    assert list(importer.load(_write(tmp_path, suffix, original)))  # the sample itself is valid

    @BUDGET
    @given(mutated(original))
    def check(data: bytes) -> None:
        path = _write(tmp_path, suffix, data)
        try:
            list(importer.load(path))
        except BadInputError as refused:
            assert refused.path == path and refused.line >= 1
            assert str(refused).startswith(f"{path}:{refused.line}: field ")

    check()


def _write(folder: Path, suffix: str, data: bytes) -> Path:
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


@BUDGET
@given(st.lists(st.binary(max_size=80), max_size=30), st.data())
def test_the_sse_splitter_gives_back_every_byte_cut_anywhere(parts: list[bytes],
                                                            data: st.DataObject) -> None:
    stream = b"".join(parts)
    splitter = SSESplitter()
    out: list[bytes] = []
    at = 0
    while at < len(stream):
        step = data.draw(st.integers(1, 64))
        out += splitter.feed(stream[at:at + step])
        at += step
    assert b"".join(out) + splitter.flush() == stream
    for event in out:
        inspect_event(event, need_id=True)  # whatever the bytes, it never raises


@BUDGET
@given(st.binary(max_size=400))
def test_the_event_inspector_takes_any_bytes(event: bytes) -> None:
    inspect_event(b"data: " + event + b"\n\n", need_id=True)
    inspect_event(event, need_id=False)


@pytest.mark.parametrize(("kind", "suffix", "data", "field"), [
    ("mixpanel", ".jsonl", b'{"event":"x","properties":{"time":1e309,"distinct_id":"a"}}\n',
     "properties.time"),
    ("mixpanel", ".jsonl", b'{"event":"x","properties":{"time":NaN,"distinct_id":"a"}}\n',
     "properties.time"),
    ("junit", ".xml", b'<?xml version="1.0" encoding="tf-8"?>\n<testsuites/>\n', "(xml)"),
], ids=["time-overflow", "time-nan", "unknown-xml-encoding"])
def test_what_fuzzing_found_is_refused_by_line(tmp_path: Path, kind: str, suffix: str,
                                               data: bytes, field: str) -> None:
    """Each raised OverflowError, ValueError or LookupError before (a traceback)."""
    path = _write(tmp_path, suffix, data)
    with pytest.raises(BadInputError) as refused:
        list(IMPORTERS[kind].load(path))
    assert (refused.value.line, refused.value.field) == (1, field)
