"""Mappings as data, bands, the KPI config's errors, correlation at a lag and trends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kpi_mapping import config
from kpi_mapping.mappings import MAPPINGS, by_id
from kpi_mapping.report import correlation, show, trend
from specs import catalog


def test_nineteen_mappings_with_unique_ids_and_keys() -> None:
    assert [m.id for m in MAPPINGS] == list(range(1, 20))
    assert len({m.key for m in MAPPINGS}) == 19
    assert all(m.ceo_formula and m.cto_formula and m.sources for m in MAPPINGS)


def test_promql_names_only_catalogue_metrics() -> None:
    names = {spec.name for spec in catalog.ALL_METRICS}
    for mapping in MAPPINGS:
        for name in re.findall(r"\bllmkpi_[a-z_]+", mapping.promql or ""):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert base in names, (mapping.key, name)


@pytest.mark.parametrize(("mapping_id", "value", "band"), [
    (1, 23.9, "green"), (1, 24.0, "amber"), (1, 200.0, "red"),  # lower is better
    (2, 0.75, "green"), (2, 0.45, "amber"), (2, 0.97, "red"),  # within 60-90 %
    (8, 0.80, "green"), (8, 0.70, "amber"), (8, 0.5, "red"),  # higher is better
    (5, 0.0, "green"), (5, 7.0, "amber"), (5, 8.0, "red"),  # days late
], ids=str)
def test_default_bands(mapping_id: int, value: float, band: str) -> None:
    bands = by_id(mapping_id).bands
    assert bands is not None and bands.of(value) == band


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kpi.yaml"
    path.write_text(text)
    return path


def test_config_overrides_bands_and_targets(tmp_path: Path) -> None:
    loaded = config.load(write(tmp_path, "version: 1\nmappings:\n  net_profit_margin: {}\n"
                               "  3:\n    bands: {green: {max: 500}, amber: {max: 1500}}\n"
                               "  revenue_per_employee: {target: 400000}\n"
                               "correlation_periods: 6\n"))
    bands = loaded.bands_for(by_id(3))
    assert bands is not None and bands.of(400) == "green" and bands.of(2000) == "red"
    assert loaded.targets == {19: 400000.0} and loaded.correlation_periods == 6


def test_margin_basis_defaults_to_fully_loaded(tmp_path: Path) -> None:
    assert config.KpiConfig().margin_basis == "fully_loaded"
    chosen = config.load(write(tmp_path, "version: 1\nmargin_basis: busy_time\n"))
    assert chosen.margin_basis == "busy_time"


@pytest.mark.parametrize(("text", "message"), [
    ("mappings: {}\n", ":1: version: missing"),
    ("version: 2\n", ":1: version: 2 is not a version this llmkpi reads"),
    ("version: 1\nmapings: {}\n", ":2: mapings: unknown key"),
    ("version: 1\nmappings:\n  20: {target: 1}\n", ":3: mappings.20: no such mapping"),
    ("version: 1\nmappings:\n  2:\n    bands: {green: {min: 0.9, max: 0.6}, amber: {min: 0}}\n",
     ":4: mappings.2.bands.green: min 0.9 is not below max 0.6"),
    ("version: 1\ncorrelation_periods: 2\n", ":2: correlation_periods: expected a whole"),
    ("version: 1\nslo_ttft_seconds: fast\n", ":2: slo_ttft_seconds: expected a number"),
    ("version: 1\nmappings: [1, 2\n", "not valid YAML"),
    ("version: 1\nmargin_basis: gross\n",
     ":2: margin_basis: expected fully_loaded or busy_time, got 'gross'"),
], ids=["no-version", "future-version", "typo-key", "no-mapping", "min-above-max",
        "too-few-periods", "not-a-number", "broken-yaml", "margin-basis"])
def test_config_errors_name_the_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=re.escape(message)):
        config.load(path)


def test_correlation_finds_the_lag_at_which_the_cto_metric_leads() -> None:
    cto = [1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 2.0, 7.0, 3.0, 5.0, 1.0]
    ceo = [None, None, 1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 2.0, 7.0, 3.0]  # two periods behind
    found = correlation(ceo, cto, 8)
    assert found.lag == 2 and found.r == pytest.approx(1.0) and found.periods == 8
    assert correlation([None] * 11, cto, 8).r is None


def test_trend_and_units_as_people_read_them() -> None:
    assert trend([1.0, 2.0, 3.0, 4.0]) == "rising"
    assert trend([4.0, 3.9, 4.05, 4.0]) == "flat"
    assert trend([None, 1.0]) is None
    assert show(0.123, "ratio") == "12.3 %" and show(0.02, "ratio", signed=True) == "+2.0 pp"
    assert show(250_000, "dollars_per_year") == "$250K/yr" and show(-5, "dollars") == "-$5"
