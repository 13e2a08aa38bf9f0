"""Commit SHAs as deployment logs write them: full, or a unique prefix of 7 or more hex digits.

One resolver for the importer (which reports what it cannot resolve, with file and line) and
for lead time (which resolves again at read time, so a deployment log imported before the
git history still counts once the history is there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Status = Literal["resolved", "unknown", "ambiguous"]


@dataclass(frozen=True)
class Resolution:
    status: Status
    sha: str  # the full SHA when resolved, else the text as written
    matches: int


class ShaIndex:
    """The store's commits, sorted, so a prefix is a range found by two binary searches."""

    def __init__(self, shas: Iterable[str]) -> None:
        self._sorted = np.array(sorted({s.lower() for s in shas}), dtype=object)

    def resolve(self, written: str) -> Resolution:
        prefix = written.lower()
        lo = int(np.searchsorted(self._sorted, prefix, side="left"))
        # every string starting with the prefix sorts below prefix + a char above 'f'
        hi = int(np.searchsorted(self._sorted, prefix + "~", side="left"))
        if hi - lo == 1:
            return Resolution("resolved", str(self._sorted[lo]), 1)
        if lo < len(self._sorted) and self._sorted[lo] == prefix:
            return Resolution("resolved", prefix, hi - lo)  # a full SHA that prefixes none
        return Resolution("unknown" if hi == lo else "ambiguous", written, hi - lo)
