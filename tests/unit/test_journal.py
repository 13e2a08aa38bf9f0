"""The journal: whole lines in order across segments, resumable positions, bad lines kept."""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine_shim import journal
from engine_shim.journal import JournalReader, JournalWriter, Position
from engine_shim.records import RequestRecord


def record(n: int, **extra: object) -> RequestRecord:
    return RequestRecord(request_id=f"r{n}", tenant="acme", model="m", feature="chat",
                         endpoint="/v1/chat/completions", arrival_time=1_700_000_000.000001,
                         finish_time=1_700_000_000.5, outcome="ok", http_status=200,
                         first_token_time=1_700_000_000.1, last_token_time=1_700_000_000.4,
                         inter_token_gaps=(0.1, 0.2), prompt_tokens=10, output_tokens=3,
                         **extra)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ids(batch: list[tuple[RequestRecord, Position]]) -> list[str]:
    return [r.request_id for r, _ in batch]


def test_records_come_back_whole_with_the_position_after_each(tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path)
    for n in range(3):
        writer.record(record(n))
    reader = JournalReader(tmp_path)
    batch = reader.read()
    assert [r for r, _ in batch] == [record(0), record(1), record(2)]  # nothing changed
    line = len(journal.record_line(record(0)))
    assert [p for _, p in batch] == [Position(1, line), Position(1, 2 * line),
                                     Position(1, 3 * line)]
    # a consumer that committed the first position resumes with the second record
    again = JournalReader(tmp_path, batch[0][1])
    assert ids(again.read()) == ["r1", "r2"]
    assert reader.read() == []  # nothing new
    writer.record(record(3))
    assert ids(reader.read()) == ["r3"]
    writer.close()


def test_a_line_is_read_only_once_its_newline_is_there(tmp_path: Path) -> None:
    journal.ensure(tmp_path)
    line = journal.record_line(record(0))
    with (tmp_path / journal.LINK).open("ab") as handle:
        handle.write(line[:20])
        handle.flush()
        reader = JournalReader(tmp_path)
        assert reader.read() == [] and reader.position == Position(1, 0)
        handle.write(line[20:])
    assert ids(reader.read()) == ["r0"]


def test_rotation_by_size_loses_and_repeats_nothing(tmp_path: Path) -> None:
    clock = Clock()
    one = len(journal.record_line(record(0)))
    writer = JournalWriter(tmp_path, max_bytes=3 * one)  # three records per segment
    reader = JournalReader(tmp_path, settle=2.0, clock=clock)
    seen: list[str] = []
    for n in range(10):
        writer.record(record(n))
        if n % 4 == 0:
            seen += ids(reader.read())
            clock.now += 1.0
    for _ in range(6):
        seen += ids(reader.read())
        clock.now += 1.5
    assert seen == [f"r{n}" for n in range(10)]
    assert journal.segments(tmp_path) == [1, 2, 3, 4] and journal.current(tmp_path) == 4


def test_a_writer_still_on_the_old_segment_is_waited_for(tmp_path: Path) -> None:
    """nginx keeps writing to the segment it opened until it reopens (USR1)."""
    clock = Clock()
    journal.ensure(tmp_path)
    old = os.open(tmp_path / journal.LINK, os.O_WRONLY | os.O_APPEND)
    os.write(old, journal.record_line(record(0)))
    reader = JournalReader(tmp_path, settle=2.0, clock=clock)
    assert ids(reader.read()) == ["r0"]
    journal.rotate(tmp_path)
    new = JournalWriter(tmp_path)
    new.record(record(2))
    assert reader.read() == []  # segment 1 might still grow
    clock.now += 1.0
    os.write(old, journal.record_line(record(1)))  # a late line on the old segment
    os.close(old)
    assert ids(reader.read()) == ["r1"]
    clock.now += 1.0
    assert reader.read() == []  # it grew a second ago
    clock.now += 2.5
    assert ids(reader.read()) == ["r2"]


def test_bad_lines_are_quarantined_with_the_reason_and_counted(tmp_path: Path) -> None:
    journal.ensure(tmp_path)
    with (tmp_path / journal.LINK).open("ab") as handle:
        handle.write(journal.record_line(record(0)))
        handle.write(b"not json\n")
        handle.write(b'{"request_id": "x", "outcome": "ok", "colour": "red"}\n')
        handle.write(b'{"request_id": "y", "outcome": "lost"}\n')
        handle.write(journal.record_line(record(1)))
    reader = JournalReader(tmp_path)
    assert ids(reader.read()) == ["r0", "r1"]
    assert reader.stats.lines == 5 and reader.stats.quarantined == 3
    kept = [json.loads(line) for line in (tmp_path / journal.QUARANTINE).read_text()
            .splitlines()]
    assert kept[0]["line"] == "not json"
    assert "unknown field(s) ['colour']" in kept[1]["reason"]
    assert "'outcome' must be one of" in kept[2]["reason"]
    assert all(k["segment"] == 1 and k["end"] > 0 for k in kept)


def test_an_unfinished_line_in_a_finished_segment_is_quarantined(tmp_path: Path) -> None:
    clock = Clock()
    journal.ensure(tmp_path)
    with (tmp_path / journal.LINK).open("ab") as handle:
        handle.write(journal.record_line(record(0)) + b'{"request_id": "cut')
    journal.rotate(tmp_path)
    JournalWriter(tmp_path).record(record(1))
    reader = JournalReader(tmp_path, settle=2.0, clock=clock)
    assert ids(reader.read()) == ["r0"]
    clock.now += 3.0
    assert ids(reader.read()) == ["r1"] and reader.stats.quarantined == 1
    assert "stopped mid-line" in (tmp_path / journal.QUARANTINE).read_text()


def test_prune_keeps_what_a_consumer_has_not_passed_and_the_current_segment(
        tmp_path: Path) -> None:
    for _ in range(4):
        journal.rotate(tmp_path)
    assert journal.prune(tmp_path, [Position(3, 10), Position(4, 0)]) == [1, 2]
    assert journal.segments(tmp_path) == [3, 4]
    assert journal.prune(tmp_path, [Position(9, 0)]) == [3]  # never the current one
    assert journal.prune(tmp_path, []) == []


def test_a_reader_whose_segment_was_pruned_starts_at_the_oldest_kept(tmp_path: Path) -> None:
    for _ in range(3):
        journal.rotate(tmp_path)
    JournalWriter(tmp_path).record(record(7))
    journal.prune(tmp_path, [Position(3, 0)])
    assert ids(JournalReader(tmp_path, Position(1, 500)).read()) == ["r7"]
    assert Position.parse(Position(3, 42).text()) == Position(3, 42)


def test_a_sealed_segment_is_finished_at_once(tmp_path: Path) -> None:
    one = len(journal.record_line(record(0)))
    writer = JournalWriter(tmp_path, max_bytes=2 * one)  # seals each segment it leaves
    for n in range(5):
        writer.record(record(n))
    reader = JournalReader(tmp_path, settle=3600.0, clock=Clock())  # the clock never moves
    assert ids(reader.read()) == [f"r{n}" for n in range(5)]
    assert sorted(p.name for p in tmp_path.glob("*.sealed")) == [
        "journal.000000000001.sealed", "journal.000000000002.sealed"]
    assert journal.prune(tmp_path, [reader.position]) == [1, 2]
    assert not list(tmp_path.glob("*.sealed"))


def test_a_volatile_consumer_writes_its_position_at_most_once_a_second(tmp_path: Path) -> None:
    from engine_shim.tailer import VolatileConsumer

    class ListSink:
        def __init__(self) -> None:
            self.records: list[RequestRecord] = []

        def record(self, r: RequestRecord) -> None:
            self.records.append(r)

        def record_snapshot(self, snapshot: object) -> None: ...

        def close(self) -> None: ...

    clock, sink = Clock(), ListSink()
    consumer = VolatileConsumer(sink, tmp_path, every=1.0, clock=clock)
    assert consumer.resume_at() == journal.START
    consumer.consume([record(0)], Position(1, 10))  # the first is written at once
    consumer.consume([record(1)], Position(1, 20))
    assert consumer.resume_at() == Position(1, 10)  # a crash now: record 1 seen again
    consumer.tick()
    assert consumer.resume_at() == Position(1, 10)
    clock.now = 1.5
    consumer.tick()  # idle a second later: written
    assert consumer.resume_at() == Position(1, 20)
    consumer.consume([record(2)], Position(1, 30))
    consumer.close()  # and at close
    assert consumer.resume_at() == Position(1, 30) and len(sink.records) == 3


def test_a_line_written_just_before_the_seal_is_read_not_quarantined(tmp_path: Path) -> None:
    """The writer appends a last line, rotates and seals between the reader's read at the
    end of the segment and its check whether the segment is finished."""
    journal.ensure(tmp_path)
    reader = JournalReader(tmp_path, settle=3600.0, clock=Clock())
    assert reader.read() == []  # at the end of segment 1
    with (tmp_path / journal.LINK).open("ab") as handle:
        handle.write(journal.record_line(record(0)))
    journal.rotate(tmp_path)
    journal.seal(tmp_path, 1)
    path = tmp_path / journal.segment_name(1)
    assert reader._finished(path) is False  # the new line is read first
    assert ids(reader.read()) == ["r0"] and reader.stats.quarantined == 0
