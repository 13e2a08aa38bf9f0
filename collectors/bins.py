"""A request's token gaps counted in the ITL histogram's bins, in plain Python: the ledger
sink writes them per row inside the sidecar's telemetry process, which so never loads
pandas or numpy (collectors/usage.py, which sums them, re-exports this one definition)."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

from specs.catalog import ITL_BUCKETS

ITL_BOUNDS = ITL_BUCKETS.bounds


def gap_counts(gaps: Sequence[float]) -> str | None:
    """The gaps in the ITL bins (bounds[i−1] < gap ≤ bounds[i], Prometheus' `le`; one more
    bin above the last bound; a NaN there too), as sparse JSON {"bin": count} without
    spaces: what the ledger keeps so a per-gap p95 and the ITL SLO can be computed later,
    exactly as from the live histogram."""
    if not gaps:
        return None
    counts = [0] * (len(ITL_BOUNDS) + 1)
    for gap in gaps:
        counts[len(ITL_BOUNDS) if math.isnan(gap) else bisect_left(ITL_BOUNDS, gap)] += 1
    return "{" + ",".join(f'"{i}":{n}' for i, n in enumerate(counts) if n) + "}"
