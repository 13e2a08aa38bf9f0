"""Settings (llmkpi/settings.py): a flag over its LLMKPI_* variable over the default, resolved
one way for every component; a bad value is one clear error."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from llmkpi import settings
from llmkpi.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def sidecar_args(**flags: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    COMMANDS["sidecar"].add_arguments(parser)
    args = parser.parse_args([])
    for name, value in flags.items():
        setattr(args, name, value)
    return args


def test_a_flag_wins_over_the_environment_which_wins_over_the_default() -> None:
    env = settings.Env({"LLMKPI_UPSTREAM": "http://env:8000", "LLMKPI_SIDECAR_PORT": "9001",
                        "LLMKPI_KEY_SALT": "pepper"})
    chosen = settings.SidecarSettings.from_args(sidecar_args(port=7000), env)
    assert chosen.upstream == "http://env:8000"  # environment over the default
    assert chosen.port == 7000  # the flag over the environment
    assert chosen.metrics_port == 9464  # neither: the default
    assert chosen.key_salt == "pepper" and settings.key_salt(env) == "pepper"
    assert settings.SidecarSettings.from_args(sidecar_args(), settings.Env({})).port == 8080


def test_events_and_the_store_resolve_the_same_way() -> None:
    env = settings.Env({"LLMKPI_OUTBOX": "/env/outbox.sqlite",
                        "LLMKPI_DATABASE_URL": "postgresql://db/llmkpi"})
    args = argparse.Namespace(outbox="/flag/outbox.sqlite", api_host=None)
    assert settings.EventsSettings.from_args(args, env).outbox == Path("/flag/outbox.sqlite")
    assert settings.EventsSettings.from_args(argparse.Namespace(), env).outbox == Path(
        "/env/outbox.sqlite")
    assert settings.database_url(None, env) == "postgresql://db/llmkpi"
    assert settings.database_url("x.sqlite", env) == "x.sqlite"
    assert settings.database_url(None, settings.Env({})) == "llmkpi.sqlite"


@pytest.mark.parametrize(("variables", "message"), [
    ({"LLMKPI_SIDECAR_PORT": "eighty"}, "LLMKPI_SIDECAR_PORT='eighty' is not an integer"),
    ({"LLMKPI_MAX_TENANTS": "0"}, "LLMKPI_MAX_TENANTS=0 must be >= 1"),
    ({"LLMKPI_LEDGER": "maybe"}, "LLMKPI_LEDGER='maybe' must be true or false"),
])
def test_a_bad_variable_is_one_clear_error(variables: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        settings.SidecarSettings.from_args(sidecar_args(), settings.Env(variables))


def test_mixpanel_needs_credentials_with_a_token() -> None:
    env = settings.Env({"LLMKPI_OUTBOX": "o.sqlite", "LLMKPI_MIXPANEL_TOKEN": "t"})
    with pytest.raises(ValueError, match="needs credentials"):
        settings.EventsSettings.from_args(argparse.Namespace(), env)


def test_a_child_process_gets_this_environment_with_extras_over_it() -> None:
    env = settings.Env({"PATH": "/bin", "LLMKPI_POD": "a"})
    assert settings.child_environment({"LLMKPI_POD": "b"}, env) == {"PATH": "/bin",
                                                                   "LLMKPI_POD": "b"}


def test_every_variable_read_is_documented_and_only_settings_reads_the_environment() -> None:
    read = set()
    packages = [p.parent for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests"]
    for path in (f for package in packages for f in package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path != ROOT / "llmkpi" / "settings.py":
            assert "os.environ" not in text and "getenv(" not in text, path
        read |= set(re.findall(r'"(LLMKPI_[A-Z_]+)"', text))
    assert read <= set(settings.ENV_DOC), sorted(read - set(settings.ENV_DOC))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in settings.ENV_DOC), [
        n for n in settings.ENV_DOC if n not in readme]
