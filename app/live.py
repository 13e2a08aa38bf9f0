"""Instant values from a Prometheus server's HTTP API, for the serving-health panel."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import requests

from app.config import LiveQuery


@dataclass(frozen=True)
class LiveValue:
    query: LiveQuery
    value: float | None
    problem: str | None = None  # why there is no value: unreachable, refused, no series


def read(base: str, queries: Sequence[LiveQuery], timeout: float = 5.0) -> list[LiveValue]:
    """One instant query per item (each aggregates to one series); a failure is reported
    on its item, never raised."""
    out = []
    for query in queries:
        try:
            resp = requests.get(base.rstrip("/") + "/api/v1/query",
                                params={"query": query.promql}, timeout=timeout)
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            out.append(LiveValue(query, None, f"cannot read {base}: {exc}"))
            continue
        if body.get("status") != "success":
            out.append(LiveValue(query, None, f"{body.get('errorType', 'error')}:"
                                 f" {body.get('error', resp.status_code)}"))
            continue
        result = body.get("data", {}).get("result", [])
        values = [float(item["value"][1]) for item in result
                  if not math.isnan(float(item["value"][1]))]
        out.append(LiveValue(query, values[0] if values else None,
                             None if values else "no series yet"))
    return out
