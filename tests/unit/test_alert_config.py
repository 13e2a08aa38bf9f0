"""The SLO config: defaults, scaled burn-rate windows, and mistakes named by file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import build, config, rules, slo
from llmkpi.cli import main


def test_the_embedded_config_has_the_three_slos_and_workbook_windows() -> None:
    loaded = config.load(build.DEFAULT_CONFIG)
    assert [(s.name, s.sli) for s in loaded.slos] == [
        ("availability", "availability"), ("ttft", "ttft"), ("itl", "itl")]
    wins = [(w.severity, w.factor, long, short) for w, long, short in slo.windows(30 * 86_400)]
    assert wins == [("page", 14.4, "1h", "5m"), ("page", 6, "6h", "30m"),
                    ("ticket", 3, "1d", "2h"), ("ticket", 1, "3d", "6h")]


def test_windows_scale_with_the_period_and_the_factors_stay() -> None:
    wins = slo.windows(12 * 3_600)
    assert [(long, short) for _, long, short in wins] == [
        ("1m", "5s"), ("6m", "30s"), ("24m", "2m"), ("1h12m", "6m")]
    # factor = budget share x period / long window, whatever the period
    for (window, _, _), share in zip(wins, (0.02, 0.05, 0.10, 0.10), strict=True):
        assert window.factor == pytest.approx(share * 30 * 86_400 / window.long_seconds)


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m"), (86_400, "1d"), (4_320, "1h12m"),
                                               (93_784, "1d2h3m4s")])
def test_durations_round_trip(seconds: int, text: str) -> None:
    assert rules.duration(seconds) == text
    assert rules.seconds(text) == seconds


GOOD = """\
version: 1
slos:
  - name: ttft
    sli: ttft
    threshold_seconds: 0.5
    objective: 0.99
"""
ERRORS = [
    ("no-version", "slos: []\n", ":1: version: missing"),
    ("version-2", GOOD.replace("version: 1", "version: 2"), ":1: version: 2 is not a version"),
    ("unknown-top", GOOD + "sloz: 1\n", ":7: sloz: unknown key"),
    ("no-slos", "version: 1\n", ":1: slos: expected a list of SLOs"),
    ("not-a-bound", GOOD.replace("0.5", "0.45"),
     ":5: slos[0].threshold_seconds: 0.45 s is not a bucket bound"),
    ("objective-1", GOOD.replace("0.99", "1.0"), ":6: slos[0].objective: 1.0 is out of range"),
    ("objective-text", GOOD.replace("0.99", "high"), ":6: slos[0].objective: expected a"
                                                       " number"),
    ("short-period", GOOD + "    period: 2h\n", ":7: slos[0].period: 2h is shorter than 12h"),
    ("bad-period", GOOD + "    period: 1month\n", ":7: slos[0].period: '1month' is not a"
                                                   " duration"),
    ("unknown-sli", GOOD.replace("sli: ttft", "sli: tpot"), ":4: slos[0].sli: 'tpot'"),
    ("no-threshold", GOOD.replace("    threshold_seconds: 0.5\n", ""),
     ":3: slos[0].threshold_seconds: missing"),
    ("bad-name", GOOD.replace("name: ttft", "name: TTFT p95"), ":3: slos[0].name: 'TTFT p95'"),
    ("twice", GOOD + GOOD.split("slos:\n")[1], ":7: slos[1].name: 'ttft' twice"),
    ("model-key", GOOD + "    models:\n      big: {objectiv: 0.9}\n",
     ":8: slos[0].models.big.objectiv: unknown key"),
    ("cost-text", GOOD + "cost: {budget_per_million_tokens: cheap}\n",
     ":7: cost.budget_per_million_tokens: expected a number"),
    ("kpi-duration", GOOD + "kpi: {stale_after: soon}\n", ":7: kpi.stale_after: 'soon'"),
    ("relative-runbook", GOOD + "runbook_url: docs/runbooks.md\n",
     ":7: runbook_url: 'docs/runbooks.md' is not an absolute http(s) URL"),
    ("not-yaml", "version: [1\n", ":2: not valid YAML: expected ',' or ']'"),
    ("empty", "", ": the SLO config is empty"),
]


@pytest.mark.parametrize(("case", "text", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_mistakes_name_the_file_line_and_key(tmp_path: Path, case: str, text: str,
                                             message: str) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"^") as info:
        config.load(path)
    assert str(info.value).startswith(f"{path}{message}"), str(info.value)


def test_per_model_targets_inherit_what_they_do_not_set(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(GOOD + "    period: 28d\n    models:\n      big: {objective: 0.95}\n")
    loaded = config.load(path).slos[0]
    assert loaded.models["big"] == config.Target(0.95, 28 * 86_400.0, 0.5)


def test_the_command_writes_nothing_when_the_config_is_wrong(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "slo.yaml"
    bad.write_text(GOOD.replace("0.5", "0.45"))
    out = tmp_path / "rules"
    assert main(["alerts", "build", "--slo-config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{bad}:5: slos[0].threshold_seconds" in err
    assert not out.exists()
    assert main(["alerts", "build", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(build.render_all(
        config.load(build.DEFAULT_CONFIG)))


def test_an_alert_reading_a_series_from_another_group_is_refused() -> None:
    record = rules.Recording("job:x:rate5m", "sum(rate(x[5m]))")
    alert = rules.Alert("XHigh", "job:x:rate5m > 1", "ticket", "s", "d", "r")
    assert rules.render([rules.Group("one", [record, alert])]).count("- alert:") == 1
    with pytest.raises(ValueError, match="XHigh reads job:x:rate5m, recorded in group rec"):
        rules.check_order([rules.Group("rec", [record]), rules.Group("alerts", [alert])])
    with pytest.raises(ValueError, match="before the group records it"):
        rules.check_order([rules.Group("one", [alert, record])])


def test_every_generated_group_reads_only_what_it_recorded_before() -> None:
    for groups in build.rule_files(config.load(build.DEFAULT_CONFIG)).values():
        rules.check_order(groups)  # raises on a cross-group or out-of-order read
        assert len(groups) == 1


def test_429s_count_against_availability_only_when_configured(tmp_path: Path) -> None:
    default = slo.groups(config.load(build.DEFAULT_CONFIG))
    assert 'code="429"' not in rules.render(default)
    path = tmp_path / "slo.yaml"
    path.write_text(build.DEFAULT_CONFIG.read_text() + "availability:\n"
                    "  throttled_is_failure: true\n")
    loaded = config.load(path)
    assert loaded.throttled_is_failure
    text = rules.render(slo.groups(loaded))
    # bad events: server failures plus 429s (disjoint: a 429 is "rejected")
    assert 'rate(llmkpi_requests_total{outcome=~"error",code="429"' not in text
    assert 'sum by (model) (rate(llmkpi_requests_total{code="429"}[5m]))' in text
    path.write_text(build.DEFAULT_CONFIG.read_text() + "availability:\n"
                    "  throttled_is_failure: sometimes\n")
    with pytest.raises(ValueError, match=r"slo.yaml:\d+: availability.throttled_is_failure:"
                                         " expected true or false"):
        config.load(path)
