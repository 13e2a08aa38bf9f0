"""The product events llmkpi emits (names are a contract, KPI_SPEC.md) and their identity.

Each event declares the properties it must carry. `insert_id` is derived from the event's
own identity, so a retry after a crash re-sends the same `$insert_id` and Mixpanel's
deduplication (event, distinct_id, time, $insert_id) keeps it once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

Kind = type | tuple[type, ...]
NUMBER: tuple[type, ...] = (int, float)

EVENTS: dict[str, dict[str, Kind]] = {
    "llm_request_completed": {"model": str, "feature": str, "outcome": str,
                              "input_tokens": int, "output_tokens": int},
    "feature_deployed": {"feature": str},
    "feature_engaged": {"feature": str},
    "resource_spike": {"resource": str, "value": NUMBER},
    "defect_encountered": {"feature": str},
    "downtime_experienced": {"service": str},
    "recovery_noticed": {"service": str},
    "response_delayed": {"model": str, "seconds": NUMBER},
    "integration_attempted": {"integration": str, "success": bool},
    "nps_submitted": {"score": int},
}


def validate(event: str, distinct_id: str, properties: Mapping[str, Any]) -> None:
    """Raise ValueError naming the event and field that is wrong; never repair input."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; the contract has {', '.join(sorted(EVENTS))}")
    if not isinstance(distinct_id, str) or not distinct_id:
        raise ValueError(f"event {event!r}: field 'distinct_id' must be a non-empty string")
    for name, kind in EVENTS[event].items():
        if name not in properties:
            raise ValueError(f"event {event!r}: property {name!r} is required")
        value = properties[name]
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"event {event!r}: property {name!r} must not be a boolean")
        if not isinstance(value, kind):
            raise ValueError(f"event {event!r}: property {name!r} has {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"event {event!r}: property {name!r} must be finite")
    if event == "nps_submitted" and not 0 <= properties["score"] <= 10:
        raise ValueError("event 'nps_submitted': property 'score' must be 0-10")


def insert_id(event: str, distinct_id: str, time_ms: int, key: str | None,
              properties: Mapping[str, Any]) -> str:
    """32 hex characters (Mixpanel allows up to 36) from the event's own identity.

    `key` names the occurrence when the caller has one (a request id); otherwise the
    properties themselves are the identity.
    """
    identity = key if key is not None else json.dumps(properties, sort_keys=True, default=str)
    material = "\x1f".join((event, distinct_id, str(time_ms), identity))
    return hashlib.sha256(material.encode()).hexdigest()[:32]
