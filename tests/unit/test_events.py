from dataclasses import replace

import pytest

from engine_shim.records import EngineSnapshot, RequestRecord
from exporters.events import EVENTS, insert_id, validate
from exporters.mixpanel import MixpanelSink


def test_the_contract_names_every_kpi_spec_event() -> None:
    assert set(EVENTS) == {
        "llm_request_completed", "feature_deployed", "feature_engaged", "resource_spike",
        "defect_encountered", "downtime_experienced", "recovery_noticed", "response_delayed",
        "integration_attempted", "nps_submitted"}


@pytest.mark.parametrize(("event", "props", "message"), [
    ("integration_attempted", {"integration": "slack"}, "property 'success' is required"),
    ("integration_attempted", {"integration": "slack", "success": "yes"}, "has str"),
    ("nps_submitted", {"score": True}, "must not be a boolean"),
    ("response_delayed", {"model": "m", "seconds": float("nan")}, "must be finite"),
])
def test_bad_events_are_refused_with_the_field_named(event: str, props: dict[str, object],
                                                     message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate(event, "u1", props)
    with pytest.raises(ValueError, match="'distinct_id'"):
        validate("feature_engaged", "", {"feature": "x"})


def test_insert_id_is_deterministic_and_distinguishes_occurrences() -> None:
    a = insert_id("feature_engaged", "u1", 1000, None, {"feature": "x"})
    assert a == insert_id("feature_engaged", "u1", 1000, None, {"feature": "x"})
    assert a != insert_id("feature_engaged", "u1", 1001, None, {"feature": "x"})
    assert a != insert_id("feature_engaged", "u1", 1000, "k", {"feature": "x"})
    assert len(a) == 32 and int(a, 16) >= 0


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, object]]] = []

    def track(self, event: str, distinct_id: str, properties: dict[str, object],
              **_: object) -> str:
        validate(event, distinct_id, properties)
        self.calls.append((event, distinct_id, properties))
        return "id"


RECORD = RequestRecord(request_id="r", tenant="acme", model="m", feature="chat",
                       endpoint="/v1/chat/completions", arrival_time=10.0, finish_time=13.0,
                       outcome="ok", http_status=200, first_token_time=12.5, prompt_tokens=5,
                       output_tokens=7)


def test_requests_and_engine_edges_become_events() -> None:
    recorder = Recorder()
    sink = MixpanelSink(recorder, delayed_after=2.0)  # type: ignore[arg-type]
    sink.record(RECORD)
    sink.record(replace(RECORD, first_token_time=10.1))
    assert [c[0] for c in recorder.calls] == ["llm_request_completed", "response_delayed",
                                              "llm_request_completed"]
    assert recorder.calls[0][1] == "acme" and recorder.calls[0][2]["output_tokens"] == 7
    recorder.calls.clear()
    for up, kv in ((True, 0.5), (True, 0.95), (True, 0.97), (False, None), (False, None),
                   (True, 0.2)):
        sink.record_snapshot(EngineSnapshot(time=1.0, engine="e", model="m", up=up,
                                            kv_cache_usage=kv))
    assert [c[0] for c in recorder.calls] == ["resource_spike", "downtime_experienced",
                                              "recovery_noticed"]
    recorder.calls.clear()
    sink.record_snapshot(EngineSnapshot(time=1.0, engine="no-metrics", model="m", up=False))
    assert recorder.calls == []  # never seen up: not a downtime
