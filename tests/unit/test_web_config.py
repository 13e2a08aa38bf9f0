"""The /metrics web config file: what a mistake in it says, and basic auth itself."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import bcrypt
import pytest

from exporters.web_config import BasicAuth, load_web_config

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "tls.crt", folder / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_a_full_config_loads(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {cert.name}\n  key_file: {key}\n"
                    f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    web = load_web_config(path)
    assert web.tls and web.cert_file == cert and web.key_file == key  # relative to the file
    assert web.users == {"prometheus": HASH.encode()}


@pytest.mark.parametrize(("text", "message"), [
    ("basic_auth_users:\n  prometheus: hunter2\n",
     ":2: basic_auth_users.prometheus: not a bcrypt hash (not shown)"),
    ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
     ":2: tls_server_config.cert_file: no file"),
    ("tls_server_config:\n  cert_file: a.crt\n", ":2: tls_server_config.key_file: missing"),
    ("basic_auth: {}\n", ":1: basic_auth: unknown key: expected tls_server_config,"
     " basic_auth_users"),
    ("basic_auth_users: {}\n", ": (top level): protects nothing"),
    ("tls_server_config: [\n", ":2: not valid YAML"),
], ids=["plain-password", "no-cert", "no-key", "typo", "empty", "bad-yaml"])
def test_a_mistake_names_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        load_web_config(path)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_basic_auth_lets_only_the_right_password_in() -> None:
    def app(_environ: dict[str, object], start: object) -> list[bytes]:
        return [b"metrics"]

    auth = BasicAuth(app, {"prometheus": HASH.encode()})

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert auth.allowed(header("prometheus", "s3cret"))
    assert auth.allowed(header("prometheus", "s3cret"))  # remembered: no second bcrypt
    assert not auth.allowed(header("prometheus", "s3cre"))
    assert not auth.allowed(header("nobody", "s3cret"))
    assert not auth.allowed("Basic !!!") and not auth.allowed("Bearer x") and \
        not auth.allowed("")
