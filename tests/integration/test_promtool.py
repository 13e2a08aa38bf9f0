"""The generated rules pass `promtool check rules`, and the promtool unit tests in
tests/promtool/ pass and cover every alert both firing and not firing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from alerts import build, config, rules

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_TESTS = sorted((ROOT / "tests" / "promtool").glob("*.test.yml"))
GOLDEN_RULE_DIRS = sorted((ROOT / "tests" / "golden" / "alerts").glob("*/expected"))


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: `make test` installs the Debian prometheus package")
    return path


@pytest.mark.parametrize("folder", [build.GENERATED_DIR, *GOLDEN_RULE_DIRS],
                         ids=lambda p: str(Path(p).relative_to(ROOT)))
def test_promtool_check_rules_passes(folder: Path) -> None:
    files = sorted(folder.glob("*.rules.yml"))
    assert len(files) == 4
    result = subprocess.run([promtool(), "check", "rules", *map(str, files)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run([promtool(), "test", "rules", *map(str, PROMTOOL_TESTS)],
                            capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(PROMTOOL_TESTS)


def cases() -> list[tuple[str, dict[str, str], bool]]:
    """(alert name, expected labels, fires) for every alert_rule_test case."""
    found = []
    for path in PROMTOOL_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                expected = case.get("exp_alerts") or []
                if not expected:
                    found.append((case["alertname"], {}, False))
                for alert in expected:
                    found.append((case["alertname"], alert["exp_labels"], True))
    return found


def test_every_generated_alert_is_tested_firing_and_not_firing() -> None:
    groups = [g for gs in build.rule_files(config.load(build.DEFAULT_CONFIG)).values()
              for g in gs]
    seen = cases()
    missing = []
    for alert in rules.all_alerts(groups):
        slo = alert.labels.get("slo")
        fires = [labels for name, labels, fired in seen if name == alert.alert and fired
                 and labels.get("slo") == slo]
        quiet = [name for name, _, fired in seen if name == alert.alert and not fired]
        if not fires:
            missing.append(f"{alert.alert} {alert.labels}: never tested firing")
        if not quiet:
            missing.append(f"{alert.alert}: never tested not firing")
        assert all(labels["severity"] == alert.severity for labels in fires), alert.alert
    assert not missing, missing


def test_every_alert_has_summary_description_runbook_and_a_runbook_section() -> None:
    groups = [g for gs in build.rule_files(config.load(build.DEFAULT_CONFIG)).values()
              for g in gs]
    runbooks = (ROOT / "docs" / "runbooks.md").read_text()
    headings = {line.lstrip("#").strip().lower() for line in runbooks.splitlines()
                if line.startswith("## ")}
    for alert in rules.all_alerts(groups):
        doc = alert.to_dict()
        assert set(doc["annotations"]) == {"summary", "description", "runbook_url"}
        assert all(len(text) > 20 for text in doc["annotations"].values()), alert.alert
        assert doc["labels"]["severity"] in ("page", "ticket")
        link = doc["annotations"]["runbook_url"]
        assert link.startswith("https://"), link  # absolute: read far from this repository
        anchor = link.split("#", 1)[1]
        assert anchor in headings, f"docs/runbooks.md has no section {anchor}"
