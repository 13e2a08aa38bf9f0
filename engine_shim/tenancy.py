"""Who sent a request: tenant from the bearer key (kept only as a salted hash) or a header."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from specs.configfile import ConfigFile
from specs.tenants import HASH_RE, NAME_RE, TenantAliases

ANONYMOUS = "anonymous"


def hash_api_key(key: str, salt: str) -> str:
    """Stable, non-reversible id for an API key; the key itself is never stored."""
    digest = hashlib.sha256(salt.encode() + b"\x00" + key.encode()).hexdigest()
    return f"key-{digest[:16]}"


def load_alias_file(path: Path) -> TenantAliases:
    """Read `{version: 1, tenants: {name: [key-hash, ...]}}` (specs/tenants.py)."""
    read = ConfigFile(path, "the tenant alias file", 1, "`version: 1` and `tenants`")
    read.refuse_unknown(("tenants",))
    if "tenants" not in read.top:
        raise read.fail(read.root, "tenants", "missing: map tenant names to lists of key"
                        " hashes")
    aliases: dict[str, str] = {}
    for name, node in read.mapping(read.top["tenants"], "tenants").items():
        where = f"tenants.{name}"
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise read.fail(node, where, f"tenant name {name!r} must match"
                            f" {NAME_RE.pattern}")
        for item in read.items(node, where):
            if not isinstance(item.value, str) or not HASH_RE.match(item.value):
                # the value is not echoed: what was pasted there may be a raw API key
                raise read.fail(item, where, "an entry is not a key hash (not shown: it may be"
                                " a raw API key); expected 'key-' and 16 hex digits as printed"
                                " by `llmkpi tenant-hash`")
            if aliases.get(item.value, name) != name:
                raise read.fail(item, where, f"key hash {item.value} is listed under two"
                                " tenants")
            aliases[item.value] = name
    return TenantAliases(aliases)


@dataclass(frozen=True)
class TenantResolver:
    """Key alias first (authenticated), then the tenant header, then the hashed key itself."""

    salt: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    tenant_header: str = "X-Tenant"

    def resolve(self, headers: Mapping[str, str]) -> str:
        key = _bearer_key(headers.get("Authorization", ""))
        hashed = hash_api_key(key, self.salt) if key else None
        if hashed is not None and hashed in self.aliases:
            return self.aliases[hashed]
        header = headers.get(self.tenant_header, "").strip()
        if header:
            return header[:64]
        return hashed or ANONYMOUS


def _bearer_key(value: str) -> str:
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    token = token.strip()
    return "" if token in ("", "EMPTY") else token
