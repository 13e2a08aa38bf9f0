"""The model of the tenant-alias file: which salted API-key hashes belong to which tenant.

    version: 1
    tenants:
      acme: [key-0123456789abcdef, key-fedcba9876543210]   # `llmkpi tenant-hash KEY`

engine_shim/tenancy.py parses a file into it; an aliased key decides its tenant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

HASH_RE = re.compile(r"^key-[0-9a-f]{16}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class TenantAliases:
    by_hash: Mapping[str, str] = field(default_factory=dict)  # key hash -> tenant name

    def tenant_of(self, key_hash: str) -> str | None:
        return self.by_hash.get(key_hash)

    @property
    def tenants(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.by_hash.values())))
