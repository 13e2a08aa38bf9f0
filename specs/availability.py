"""The availability rule: which requests count as downtime (docs/kpis.md, "Availability").

KPI 7, the availability SLO's recording rules and the page all judge requests by this one
definition. Server-side failures only: outcome "error" is a 5xx from the engine, an engine
the sidecar could not reach, or a stream the engine broke. A client's 4xx ("rejected") is
not downtime; a 429 is only where the SLO config's `availability.throttled_is_failure` says.
"""

from __future__ import annotations

SERVER_FAILURE_OUTCOMES = ("error",)
THROTTLED_STATUS = 429


def is_server_failure(outcome: str, http_status: int | None,
                      throttled_is_failure: bool = False) -> bool:
    """Whether a request counts against availability."""
    if outcome in SERVER_FAILURE_OUTCOMES:
        return True
    return throttled_is_failure and http_status == THROTTLED_STATUS
