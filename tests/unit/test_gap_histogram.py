"""The bulk ITL histogram exposes what a prometheus_client Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from exporters.gap_histogram import GapHistogram
from specs import catalog

SPEC = catalog.INTER_TOKEN_LATENCY


def lines(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines()
                  if line.startswith(SPEC.name) and "_created" not in line)


def test_the_same_series_as_a_prometheus_client_histogram() -> None:
    gaps = [0.0, 0.001, 0.0049, 0.005, 0.0051, 0.02, 0.25, 7.5, 1e3, 0.05]
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    bulk = GapHistogram(SPEC, ours)
    reference = Histogram(SPEC.name, SPEC.help, SPEC.labels, registry=theirs,
                          buckets=SPEC.buckets.bounds)  # type: ignore[union-attr]
    labels = ("m", "acme", "chat")
    assert bulk.labels(*labels).observe_many(gaps) == 0
    bulk.labels("m", "beta", "chat").observe_many([0.01, 0.02])
    for gap in gaps:
        reference.labels(*labels).observe(gap)
    for gap in (0.01, 0.02):
        reference.labels("m", "beta", "chat").observe(gap)
    assert lines(ours) == lines(theirs)
    # a value on a bound counts in that bound's bucket (le), one above it in the next
    assert f'{SPEC.name}_bucket{{feature="chat",le="0.005",model="m",tenant="acme"}} 4.0' \
        in lines(ours)


def test_negative_gaps_are_left_out_and_said_and_series_can_be_removed() -> None:
    registry = CollectorRegistry()
    bulk = GapHistogram(SPEC, registry)
    assert bulk.labels("m", "t", "f").observe_many([0.01, -0.5, -1.0]) == 2
    assert registry.get_sample_value(f"{SPEC.name}_count",
                                     {"model": "m", "tenant": "t", "feature": "f"}) == 1.0
    bulk.remove("m", "t", "f")
    assert registry.get_sample_value(f"{SPEC.name}_count",
                                     {"model": "m", "tenant": "t", "feature": "f"}) is None
