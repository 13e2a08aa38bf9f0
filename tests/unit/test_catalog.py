import re

import pytest

from specs import catalog

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@pytest.mark.parametrize("family", catalog.BUCKET_FAMILIES, ids=lambda f: f.name)
def test_bucket_families_sorted_unique_positive_documented(family: catalog.BucketFamily) -> None:
    assert list(family.bounds) == sorted(set(family.bounds))
    assert all(b > 0 for b in family.bounds)
    assert len(family.doc) > 40


@pytest.mark.parametrize("spec", catalog.ALL_METRICS, ids=lambda s: s.name)
def test_metric_names_are_valid_and_carry_units(spec: catalog.MetricSpec) -> None:
    assert NAME_RE.match(spec.name)
    assert spec.name.startswith(catalog.PREFIX)
    assert spec.help.endswith(".")
    if spec.type == "counter":
        assert spec.name.endswith("_total")
    else:
        assert not spec.name.endswith("_total")
    if spec.type == "histogram":
        assert spec.buckets is not None
        assert spec.name.endswith(f"_{spec.unit}")
    if spec.unit == "ratio":
        assert spec.name.endswith("_ratio")
    if spec.unit == "tokens":
        assert "_tokens" in spec.name
    assert len(set(spec.labels)) == len(spec.labels)
    assert "le" not in spec.labels


def test_names_are_unique() -> None:
    names = [s.name for s in catalog.ALL_METRICS]
    assert len(names) == len(set(names))


def test_request_metrics_carry_the_tenancy_labels() -> None:
    for spec in catalog.REQUEST_METRICS:
        assert set(catalog.REQUEST_LABELS) <= set(spec.labels), spec.name


def test_le_label_is_what_the_python_client_writes() -> None:
    from prometheus_client.utils import floatToGoString

    for family in catalog.BUCKET_FAMILIES:
        for bound in family.bounds:
            assert catalog.le_label(bound) == floatToGoString(bound)


def test_recorded_series_are_named_as_recording_rules() -> None:
    for series in catalog.RECORDED_SERIES:
        assert NAME_RE.match(series.name) and ":" in series.name, series.name
        assert series.name.startswith("llmkpi_")
