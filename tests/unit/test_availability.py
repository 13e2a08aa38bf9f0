"""The availability rule (specs/availability.py): what counts as downtime."""

from __future__ import annotations

import pytest

from specs.availability import is_server_failure


@pytest.mark.parametrize(("outcome", "status", "throttled", "bad"), [
    ("ok", 200, False, False),
    ("error", 503, False, True),      # the engine failed
    ("error", 502, False, True),      # the engine could not be reached
    ("error", 200, False, True),      # a stream the engine broke after a 200
    ("rejected", 400, False, False),  # the client's mistake
    ("rejected", 400, True, False),
    ("rejected", 429, False, False),  # load shed: not downtime by default
    ("rejected", 429, True, True),    # ... unless the SLO config counts it
    ("cancelled", 499, True, False),  # the client gave up
], ids=["ok", "5xx", "unreachable", "broken-stream", "4xx", "4xx-with-switch", "429",
        "429-counted", "cancelled"])
def test_server_side_failures_only(outcome: str, status: int, throttled: bool,
                                   bad: bool) -> None:
    assert is_server_failure(outcome, status, throttled) is bad
