import pytest

from engine_shim.records import RequestRecord


def test_round_trip_and_derived_times() -> None:
    record = RequestRecord(
        request_id="r", tenant="t", model="m", feature="f", endpoint="/v1/completions",
        arrival_time=10.0, finish_time=12.5, outcome="ok", http_status=200,
        first_token_time=10.2, inter_token_gaps=(0.1, 0.3), extra=(("k", "v"),))
    assert RequestRecord.from_dict(record.to_dict()) == record
    assert record.time_to_first_token == pytest.approx(0.2)
    assert record.e2e_latency == 2.5
    assert record.mean_inter_token_latency == pytest.approx(0.2)


def test_from_dict_names_bad_fields() -> None:
    good = RequestRecord(request_id="r", tenant="t", model="m", feature="f", endpoint="/",
                         arrival_time=0, finish_time=0, outcome="ok", http_status=200).to_dict()
    with pytest.raises(ValueError, match="unknown field"):
        RequestRecord.from_dict({**good, "tennant": "x"})
    with pytest.raises(ValueError, match="'outcome'"):
        RequestRecord.from_dict({**good, "outcome": "fine"})
