from pathlib import Path

import pytest

from engine_shim.tenancy import ANONYMOUS, TenantResolver, hash_api_key, load_alias_file


def test_hash_is_stable_salted_and_hides_the_key() -> None:
    a = hash_api_key("sk-secret-123", "salt-a")
    assert a == hash_api_key("sk-secret-123", "salt-a")
    assert a != hash_api_key("sk-secret-123", "salt-b")
    assert "secret" not in a and a.startswith("key-") and len(a) == 20


def test_resolution_order() -> None:
    key_hash = hash_api_key("sk-acme", "s")
    resolver = TenantResolver("s", {key_hash: "acme"})
    auth = {"Authorization": "Bearer sk-acme"}
    assert resolver.resolve(auth) == "acme"
    assert resolver.resolve({**auth, "X-Tenant": "spoof"}) == "acme"  # alias is authenticated
    assert resolver.resolve({"Authorization": "Bearer sk-other", "X-Tenant": "beta"}) == "beta"
    assert resolver.resolve({"Authorization": "Bearer sk-other"}) == hash_api_key("sk-other", "s")
    assert resolver.resolve({"Authorization": "Bearer EMPTY"}) == ANONYMOUS
    assert resolver.resolve({}) == ANONYMOUS


def test_alias_file_round_trip(tmp_path: Path) -> None:
    h = hash_api_key("k1", "s")
    path = tmp_path / "aliases.yaml"
    path.write_text(f"version: 1\ntenants:\n  acme: [{h}]\n")
    assert load_alias_file(path) == {h: "acme"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\ntenants: {}\n", "field 'version' must be 1"),
        ("version: 1\n", "field 'tenants'"),
        ("version: 1\ntenants:\n  acme: key-1\n", "field 'tenants.acme' must be a list"),
        ("version: 1\ntenants:\n  acme: [sk-raw-key]\n", "field 'tenants.acme' has 'sk-raw-key'"),
        ("version: 1\ntenants:\n  acme: [\n", "line"),
    ],
    ids=["version", "no-tenants", "not-list", "raw-key", "bad-yaml"],
)
def test_alias_file_errors_name_the_file_and_field(tmp_path: Path, text: str,
                                                   message: str) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_alias_file(path)
    assert str(path) in str(info.value)
