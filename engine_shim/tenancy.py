"""Who sent a request: tenant from the bearer key (kept only as a salted hash) or a header."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ANONYMOUS = "anonymous"
_HASH_RE = re.compile(r"^key-[0-9a-f]{16}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def hash_api_key(key: str, salt: str) -> str:
    """Stable, non-reversible id for an API key; the key itself is never stored."""
    digest = hashlib.sha256(salt.encode() + b"\x00" + key.encode()).hexdigest()
    return f"key-{digest[:16]}"


def load_alias_file(path: Path) -> dict[str, str]:
    """Read `{version: 1, tenants: {name: [key-hash, ...]}}` into hash -> tenant name."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read tenant alias file: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}:{line}: not valid YAML") from exc
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ValueError(f"{path}: field 'version' must be 1")
    tenants = doc.get("tenants")
    if not isinstance(tenants, dict):
        raise ValueError(f"{path}: field 'tenants' must map tenant names to lists of key hashes")
    aliases: dict[str, str] = {}
    for name, hashes in tenants.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"{path}: tenant name {name!r} must match {_NAME_RE.pattern}")
        if not isinstance(hashes, list):
            raise ValueError(f"{path}: field 'tenants.{name}' must be a list of key hashes")
        for item in hashes:
            if not isinstance(item, str) or not _HASH_RE.match(item):
                raise ValueError(
                    f"{path}: field 'tenants.{name}' has {item!r}; expected 'key-' and 16 hex"
                    " digits as printed by `llmkpi tenant-hash`"
                )
            if item in aliases and aliases[item] != name:
                raise ValueError(f"{path}: key hash {item} is listed under two tenants")
            aliases[item] = name
    return aliases


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
