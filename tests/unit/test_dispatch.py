import threading
import time

from engine_shim.dispatch import BoundedSink, FanOut
from engine_shim.records import EngineSnapshot, RequestRecord


def make_record(i: int = 0) -> RequestRecord:
    return RequestRecord(request_id=str(i), tenant="t", model="m", feature="f",
                         endpoint="/v1/chat/completions", arrival_time=0.0, finish_time=1.0,
                         outcome="ok", http_status=200)


class ListSink:
    name = "list"

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.snapshots: list[EngineSnapshot] = []
        self.closed = False

    def record(self, record: RequestRecord) -> None:
        self.records.append(record)

    def record_snapshot(self, snapshot: EngineSnapshot) -> None:
        self.snapshots.append(snapshot)

    def close(self) -> None:
        self.closed = True


class StuckSink(ListSink):
    name = "stuck"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def record(self, record: RequestRecord) -> None:
        self.release.wait()
        super().record(record)


class FailingSink(ListSink):
    name = "failing"

    def record(self, record: RequestRecord) -> None:
        raise RuntimeError("collector down")


def test_a_stuck_sink_never_blocks_the_caller_and_counts_drops() -> None:
    stuck, healthy = StuckSink(), ListSink()
    fan = FanOut([BoundedSink(stuck, capacity=10), BoundedSink(healthy, capacity=1000)])
    started = time.perf_counter()
    for i in range(500):
        fan.record(make_record(i))
    assert time.perf_counter() - started < 0.5  # generous: a blocked put would hang forever
    stuck.release.set()
    fan.close()
    dropped, *_ = fan.stats()["stuck"]
    assert 489 <= dropped <= 490  # one in the worker's hand, ten queued
    assert len(stuck.records) == 500 - dropped
    assert [r.request_id for r in healthy.records] == [str(i) for i in range(500)]
    assert fan.stats()["list"] == (0, 0, 0, 0)


def test_a_failing_sink_is_counted_and_isolated() -> None:
    failing, healthy = FailingSink(), ListSink()
    fan = FanOut([BoundedSink(failing), BoundedSink(healthy)])
    for i in range(20):
        fan.record(make_record(i))
    fan.record_snapshot(EngineSnapshot(time=0.0, engine="e", model="m", up=True))
    fan.close()
    assert fan.stats()["failing"] == (0, 20, 0, 0)
    assert len(healthy.records) == 20 and len(healthy.snapshots) == 1
    assert failing.closed and healthy.closed
