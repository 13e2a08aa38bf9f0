"""Who sent a request: tenant from the bearer key (kept only as a salted hash) or a header.

The trust policy (README, security): an aliased key always decides. The tenant header is
honoured only from a trusted sender, a client network listed as trusted (a gateway in front
sets the header) or a request carrying the shared secret in SECRET_HEADER; otherwise the
key's hash decides and a header naming another tenant is refused, counted and logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from specs.configfile import ConfigFile
from specs.tenants import HASH_RE, NAME_RE, TenantAliases

ANONYMOUS = "anonymous"
SECRET_HEADER = "X-Llmkpi-Tenant-Secret"  # never forwarded to the engine
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
class TenantTrust:
    """Who may name the tenant in a header. Nothing configured: no one."""

    networks: tuple[Network, ...] = ()
    secret: str = ""

    @classmethod
    def parse(cls, networks: str, secret: str = "") -> TenantTrust:
        """From `10.0.0.0/8,::1` (commas or spaces) and a secret; ValueError names a bad
        entry."""
        parsed = []
        for item in networks.replace(",", " ").split():
            try:
                parsed.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"trusted network {item!r} is not an address or CIDR block"
                                 " (e.g. 10.0.0.0/8)") from None
        return cls(tuple(parsed), secret)

    def trusts(self, peer: str | None, headers: Mapping[str, str]) -> bool:
        if self.secret:
            given = headers.get(SECRET_HEADER, "")
            if given and hmac.compare_digest(given.encode(), self.secret.encode()):
                return True
        if self.networks and peer:
            try:
                address = ipaddress.ip_address(peer)
            except ValueError:
                return False
            return any(address in network for network in self.networks)
        return False


@dataclass(frozen=True)
class Tenancy:
    """The tenant decided for one request; `refused` names a header tenant not honoured."""

    tenant: str
    refused: str | None = None


@dataclass(frozen=True)
class TenantResolver:
    """Key alias first (authenticated), then the tenant header if its sender is trusted,
    then the hashed key itself."""

    salt: str
    aliases: Mapping[str, str] = field(default_factory=dict)
    tenant_header: str = "X-Tenant"
    trust: TenantTrust = field(default_factory=TenantTrust)

    def resolve(self, headers: Mapping[str, str], peer: str | None = None) -> str:
        return self.decide(headers, peer).tenant

    def decide(self, headers: Mapping[str, str], peer: str | None = None) -> Tenancy:
        key = _bearer_key(headers.get("Authorization", ""))
        hashed = hash_api_key(key, self.salt) if key else None
        if hashed is not None and hashed in self.aliases:
            return Tenancy(self.aliases[hashed])
        header = headers.get(self.tenant_header, "").strip()[:64]
        decided = hashed or ANONYMOUS
        if not header:
            return Tenancy(decided)
        if self.trust.trusts(peer, headers):
            return Tenancy(header)
        return Tenancy(decided, refused=header if header != decided else None)


def _bearer_key(value: str) -> str:
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    token = token.strip()
    return "" if token in ("", "EMPTY") else token
