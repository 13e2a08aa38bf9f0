"""Read the sidecar's /metrics back into a per-tenant table (what `make demo` prints)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from engine_shim.engine_metrics import parse_exposition
from specs import catalog


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative (le, count) pairs."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] == 0:
        return math.nan
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return buckets[-1][0]


def tenant_summary(metrics_text: str) -> list[dict[str, Any]]:
    """Per tenant (and ALL): requests by outcome, tokens, TTFT/ITL/E2E quantiles."""
    ttft: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    itl: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    e2e: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    hists = {catalog.TIME_TO_FIRST_TOKEN.name + "_bucket": ttft,
             catalog.INTER_TOKEN_LATENCY.name + "_bucket": itl,
             catalog.E2E_REQUEST_LATENCY.name + "_bucket": e2e}
    for name, labels, value in parse_exposition(metrics_text):
        tenant = labels.get("tenant")
        if tenant is None:
            continue
        for key in (tenant, "ALL"):
            if name in hists:
                hists[name][key][float(labels["le"])] += value
            elif name == catalog.REQUESTS.name:
                counts[key][labels["outcome"]] += value
            elif name == catalog.PROMPT_TOKENS.name:
                counts[key]["prompt_tokens"] += value
            elif name == catalog.GENERATION_TOKENS.name:
                counts[key]["generation_tokens"] += value
    rows = []
    for tenant in sorted(counts, key=lambda t: (t == "ALL", -counts[t].get("ok", 0), t)):
        c = counts[tenant]
        row: dict[str, Any] = {"tenant": tenant, **{k: int(v) for k, v in c.items()}}
        for label, hist in (("ttft", ttft), ("itl", itl), ("e2e", e2e)):
            pairs = list(hist[tenant].items())
            for q in (0.5, 0.95, 0.99):
                row[f"{label}_p{round(q * 100)}_ms"] = bucket_quantile(q, pairs) * 1000
        rows.append(row)
    return rows


def format_summary(rows: list[dict[str, Any]]) -> str:
    head = (f"{'tenant':<14} {'ok':>5} {'other':>5} {'tok in':>8} {'tok out':>8} |"
            f" {'TTFT p50':>8} {'p95':>7} | {'ITL p50':>7} {'p95':>6} | {'E2E p50':>8} {'p95':>8}"
            "   (ms, sidecar /metrics)")
    lines = [head, "-" * len(head)]
    for r in rows:
        other = sum(r.get(k, 0) for k in ("error", "cancelled", "rejected"))
        lines.append(
            f"{r['tenant']:<14} {r.get('ok', 0):>5} {other:>5} {r.get('prompt_tokens', 0):>8}"
            f" {r.get('generation_tokens', 0):>8} | {r['ttft_p50_ms']:>8.1f}"
            f" {r['ttft_p95_ms']:>7.1f} | {r['itl_p50_ms']:>7.1f} {r['itl_p95_ms']:>6.1f} |"
            f" {r['e2e_p50_ms']:>8.1f} {r['e2e_p95_ms']:>8.1f}")
    return "\n".join(lines)
