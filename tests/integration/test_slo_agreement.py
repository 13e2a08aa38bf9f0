"""One SLI definition, two evaluations that agree: the same requests go to a real Prometheus
running the generated SLO recording rules, and to the ledger evaluation the page uses
(kpi_mapping/slo.py); both give the same error ratio for availability, TTFT and ITL."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from alerts import build, config
from collectors import usage
from collectors.ledger import ledger_row
from engine_shim.records import RequestRecord
from exporters.prometheus import PrometheusSink, serve_metrics
from kpi_mapping import slo as slo_eval
from llmkpi.processes import free_port
from tests.integration.helpers import prometheus

pytestmark = pytest.mark.integration
BASELINE = 2000  # requests already counted before the first scrape (see below)


def request(n: int, outcome: str, status: int, ttft: float | None = None,
            gap: float | None = None, gaps: int = 0) -> RequestRecord:
    start = 1_700_000_000.0 + n
    first = start + ttft if ttft is not None else None
    return RequestRecord(
        request_id=f"r{n}", tenant="t", model="m", feature="f", endpoint="/v1/chat/completions",
        arrival_time=start, finish_time=(first or start) + (gap or 0) * gaps + 0.01,
        outcome=outcome, http_status=status,  # type: ignore[arg-type]
        first_token_time=first, inter_token_gaps=(gap,) * gaps if gap else (),
        output_tokens=gaps + 1 if ttft is not None else None)


def traffic() -> list[RequestRecord]:
    """Every kind of request the SLIs tell apart; each request's gaps are alike, so judging
    them by their mean (the ledger) and one by one (Prometheus) is the same judgement."""
    out: list[RequestRecord] = []
    for n in range(30):
        ttft = 0.8 if n % 5 == 0 else 0.1  # 6 of 30 first tokens slower than 0.5 s
        gap = 0.08 if n % 6 == 0 else 0.02  # 5 of 30 requests with gaps over 0.05 s
        out.append(request(len(out), "ok", 200, ttft, gap, gaps=4 + n % 3))
    out += [request(len(out), "error", 503) for _ in range(3)]  # server-side failures
    out += [request(len(out), "error", 200, 0.1, 0.02, gaps=2)]  # a stream the engine broke
    out += [request(len(out), "rejected", 400) for _ in range(5)]  # the clients' mistakes
    out += [request(len(out), "rejected", 429) for _ in range(2)]  # shed load
    out += [request(len(out), "cancelled", 499, 0.1, 0.02, gaps=1) for _ in range(4)]
    return out


def test_prometheus_rules_and_the_ledger_judge_the_same_requests_alike(
        tmp_path: Path) -> None:
    registry = CollectorRegistry()
    sink = PrometheusSink(registry)
    # Every series starts at BASELINE before Prometheus first scrapes it, so each rate() over
    # the 5-minute window extrapolates by the same factor (a counter near zero would be
    # extrapolated towards zero, differently per series) and the ratios come out exact; a
    # series first seen mid-window would show no increase at all (Prometheus needs two
    # samples), so every (outcome, code) the traffic uses is in the baseline.
    for n in range(BASELINE):
        for kind in (("ok", 200, 0.1, 0.01, 1), ("error", 503, None, None, 0),
                     ("error", 200, 0.1, 0.01, 1),
                     ("rejected", 400, None, None, 0), ("rejected", 429, None, None, 0),
                     ("cancelled", 499, None, None, 0)):
            sink.record(request(-1 - n, *kind))  # type: ignore[arg-type]
    port = free_port()
    server = serve_metrics(registry, port)
    rules = tmp_path / "rules"
    build.write(rules, config.load(build.DEFAULT_CONFIG), say=lambda _line: None)
    try:
        with prometheus(tmp_path, {"sink": f"127.0.0.1:{port}"},
                        tuple(sorted(rules.glob("*.rules.yml")))) as prom:
            prom.wait_scraped("sink")
            time.sleep(3)  # a few samples of the baseline
            requests = traffic()
            for record in requests:
                sink.record(record)
            time.sleep(4)  # scraped and evaluated after the last request
            live = {s["metric"]["slo"]: float(s["value"][1]) for s in prom.query(
                'llmkpi_slo:error_ratio{window="5m",model="m"}')}
    finally:
        server.shutdown()
    ledger = pd.DataFrame([ledger_row(r) for r in requests])
    rows = slo_eval.Usage.of(usage.from_ledger(ledger)[1])  # what the roll-up holds
    slos = {s.name: s for s in config.load(build.DEFAULT_CONFIG).slos}
    for name in ("availability", "ttft", "itl"):
        events, bad = slo_eval.events(rows, slos[name])
        assert live[name] == pytest.approx(bad / events, rel=1e-6), name
    # by hand, so a mistake both share cannot hide: availability — 3 × 503 + 1 broken
    # stream of 41 not cancelled (30 ok, 4 error, 5 × 400, 2 × 429); TTFT — 6 slow of 35
    # first tokens (30 ok, the broken stream, 4 cancelled); ITL — 5 slow requests × 4 gaps
    # of 150 + 2 + 4 gaps
    assert live["availability"] == pytest.approx(4 / 41)
    assert live["ttft"] == pytest.approx(6 / 35)
    assert live["itl"] == pytest.approx(20 / 156)
