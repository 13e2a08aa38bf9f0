from pathlib import Path

import pytest

from engine_shim.tenancy import (
    ANONYMOUS,
    SECRET_HEADER,
    Tenancy,
    TenantResolver,
    TenantTrust,
    hash_api_key,
    load_alias_file,
)


def test_hash_is_stable_salted_and_hides_the_key() -> None:
    a = hash_api_key("sk-secret-123", "salt-a")
    assert a == hash_api_key("sk-secret-123", "salt-a")
    assert a != hash_api_key("sk-secret-123", "salt-b")
    assert "secret" not in a and a.startswith("key-") and len(a) == 20


def test_resolution_order() -> None:
    key_hash = hash_api_key("sk-acme", "s")
    resolver = TenantResolver("s", {key_hash: "acme"}, trust=TenantTrust.parse("10.0.0.0/8"))
    auth = {"Authorization": "Bearer sk-acme"}
    gateway = "10.1.2.3"
    assert resolver.resolve(auth) == "acme"
    assert resolver.resolve({**auth, "X-Tenant": "spoof"}, gateway) == "acme"  # alias decides
    assert resolver.resolve({"Authorization": "Bearer sk-other", "X-Tenant": "beta"},
                            gateway) == "beta"  # a trusted gateway names the tenant
    assert resolver.resolve({"Authorization": "Bearer sk-other"}) == hash_api_key("sk-other", "s")
    assert resolver.resolve({"Authorization": "Bearer EMPTY"}) == ANONYMOUS
    assert resolver.resolve({}) == ANONYMOUS


def test_an_untrusted_tenant_header_is_refused_and_the_key_decides() -> None:
    other = hash_api_key("sk-other", "s")
    resolver = TenantResolver("s", {hash_api_key("sk-acme", "s"): "acme"},
                              trust=TenantTrust.parse("10.0.0.0/8, fd00::/8", "gw-secret"))
    spoof = {"Authorization": "Bearer sk-other", "X-Tenant": "acme"}
    assert resolver.decide(spoof, "192.168.1.5") == Tenancy(other, refused="acme")
    assert resolver.decide({"X-Tenant": "acme"}, "192.168.1.5") == Tenancy(ANONYMOUS, "acme")
    assert resolver.decide({"X-Tenant": "acme"}, None) == Tenancy(ANONYMOUS, "acme")
    assert resolver.decide({"X-Tenant": "acme"}, "not-an-ip") == Tenancy(ANONYMOUS, "acme")
    assert resolver.decide({"X-Tenant": "acme"}, "fd00::7") == Tenancy("acme")  # IPv6 block
    assert resolver.decide({**spoof, SECRET_HEADER: "gw-secret"}, "192.168.1.5") == \
        Tenancy("acme")  # the shared secret, from anywhere
    assert resolver.decide({**spoof, SECRET_HEADER: "gw-secreT"}, "192.168.1.5") == \
        Tenancy(other, refused="acme")
    # a header naming the tenant the key decides anyway is no spoof
    assert resolver.decide({"Authorization": "Bearer sk-other", "X-Tenant": other},
                           "192.168.1.5") == Tenancy(other)


def test_nothing_configured_trusts_no_one() -> None:
    resolver = TenantResolver("s")
    assert resolver.decide({"X-Tenant": "acme"}, "127.0.0.1") == Tenancy(ANONYMOUS, "acme")
    assert resolver.decide({"X-Tenant": "acme", SECRET_HEADER: ""}, "127.0.0.1") == \
        Tenancy(ANONYMOUS, "acme")  # an empty secret matches nothing


def test_a_bad_trusted_network_is_named() -> None:
    with pytest.raises(ValueError, match=r"trusted network '10\.0\.0\.0/33' is not an address"):
        TenantTrust.parse("127.0.0.1,10.0.0.0/33")


def test_alias_file_round_trip(tmp_path: Path) -> None:
    h = hash_api_key("k1", "s")
    path = tmp_path / "aliases.yaml"
    path.write_text(f"version: 1\ntenants:\n  acme: [{h}]\n")
    loaded = load_alias_file(path)
    assert loaded.by_hash == {h: "acme"} and loaded.tenant_of(h) == "acme"
    assert loaded.tenants == ("acme",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 2\ntenants: {}\n", ":1: version: 2 is not a version"),
        ("version: 1\n", ":1: tenants: missing"),  # nothing but a version
        ("version: 1\ntenant: {}\n", ":2: tenant: unknown key"),
        ("version: 1\ntenants:\n  acme: key-1\n", ":3: tenants.acme: expected a list"),
        ("version: 1\ntenants:\n  acme: [sk-raw-key]\n",
         ":3: tenants.acme: an entry is not a key hash (not shown"),
        ("version: 1\ntenants:\n  acme: [key-0123456789abcdef]\n"
         "  beta:\n    - key-0123456789abcdef\n",
         ":5: tenants.beta: key hash key-0123456789abcdef is listed under two tenants"),
        ("version: 1\ntenants:\n  acme: [\n", ":4: not valid YAML"),
    ],
    ids=["version", "no-tenants", "typo", "not-list", "raw-key", "two-tenants", "bad-yaml"],
)
def test_alias_file_errors_name_the_file_and_field(tmp_path: Path, text: str,
                                                   message: str) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_alias_file(path)
    assert str(info.value).startswith(f"{path}"), str(info.value)
    assert message in str(info.value), str(info.value)
    assert "sk-raw-key" not in str(info.value)  # a pasted raw key is never echoed
