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
    names: str | None = None  # the query's name_by label of the answer (the SLO)


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
        result = [item for item in body.get("data", {}).get("result", [])
                  if not math.isnan(float(item["value"][1]))]
        first = result[0] if result else None
        out.append(LiveValue(
            query, float(first["value"][1]) if first else None,
            None if first else "no series yet",
            " ".join(v for k, v in sorted(first.get("metric", {}).items())
                     if k in (query.name_by or "").split(",")) or None if first else None))
    return out
