"""The `llmkpi` command (llmkpi/cli.py and the COMMANDS table): every subcommand answers
--help, and a user mistake in each ends in one line and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmkpi.cli import main, parser
from llmkpi.commands import COMMANDS


def test_every_command_module_is_registered_once() -> None:
    folder = Path(__file__).resolve().parents[2] / "llmkpi" / "commands"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    assert {c.__name__.rsplit(".", 1)[1] for c in COMMANDS.values()} == modules  # type: ignore[attr-defined]
    for command in COMMANDS.values():
        assert command.HELP and callable(command.run) and callable(command.add_arguments)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_answers(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: llmkpi {name}") and COMMANDS[name].HELP.split()[0] in out


def test_the_top_level_lists_every_command_and_its_version(
        capsys: pytest.CaptureFixture[str]) -> None:
    text = parser().format_help()
    assert all(name in text for name in COMMANDS)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("llmkpi ")


def mistakes(tmp: Path) -> dict[str, list[str]]:
    """One user mistake per command: a missing file, a bad value, an unknown kind."""
    missing = str(tmp / "missing.sqlite")
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text("version: 2\n")
    return {
        "sidecar": ["--tenant-aliases", str(bad_yaml), "--port", "0"],
        "events": ["status", "--outbox", str(tmp / "none.sqlite")],
        "simulate": ["--profile", "no-such-gpu"],
        "loadgen": ["--target", "http://127.0.0.1:1", "--duration", "-1"],
        "db": ["revision", "--database", "postgresql://nobody@127.0.0.1:1/x"],
        "import": ["colours", str(tmp / "x.csv"), "--database", missing],
        "tenant-hash": [],
        "vllm-serve": ["some-model"],
        "make-tiny-model": [str(bad_yaml)],  # a file where a folder goes
        "demo": ["--months", "0", "--workdir", str(tmp / "demo")],
        "cost": ["export", "--database", missing],
        "kpi": ["report", "--config", str(bad_yaml), "--database", missing],
        "dashboards": ["build", "--out", str(tmp / "d"), "--kpi-config", str(bad_yaml)],
        "alerts": ["build", "--out", str(tmp / "a"), "--slo-config", str(bad_yaml)],
        "app": ["--database", missing],
        "demo-data": ["--end-month", "2026-13", "--database", missing],
    }


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_mistake_is_one_line_and_exit_2(name: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = mistakes(tmp_path)[name]
    try:
        code = main([name, *argv])
    except SystemExit as exc:  # argparse refuses a missing or malformed argument itself
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.strip(), err
    assert len(err.strip().splitlines()) <= 3, err  # argparse prints usage, then one line


def test_the_import_kinds_the_help_lists_are_the_importers() -> None:
    """`llmkpi --help` names the import kinds without importing the importers."""
    from llmkpi import imports
    from llmkpi.commands import import_file

    assert list(import_file.KINDS) == imports.KINDS


def test_kubernetes_formats_write_one_resource_file_each(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "build", "--format", "prometheus-operator",
                 "--out", str(tmp_path)]) == 0
    assert main(["dashboards", "build", "--format", "configmap", "--out", str(tmp_path)]) == 0
    assert "5 dashboards as ConfigMaps" in capsys.readouterr().out
    rules = list(yaml.safe_load_all((tmp_path / "llmkpi-prometheusrules.yaml").read_text()))
    maps = list(yaml.safe_load_all((tmp_path / "llmkpi-dashboards.yaml").read_text()))
    assert [r["kind"] for r in rules] == ["PrometheusRule"] * 4
    assert [m["metadata"]["name"] for m in maps] == [
        "llmkpi-serving-dashboard", "llmkpi-disaggregated-dashboard", "llmkpi-cost-dashboard",
        "llmkpi-executive-dashboard", "llmkpi-slo-dashboard"]
