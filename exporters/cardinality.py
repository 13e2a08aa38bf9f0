"""Bounded label values: the top-K values by traffic keep their name, the rest become `other`."""

from __future__ import annotations

from collections.abc import Callable

OTHER = "other"


class TopKLabel:
    """Keeps at most `k` distinct values of one label, chosen by traffic.

    Counts are kept for at most `track` candidates (space-saving: the least-counted candidate
    is replaced and its count inherited as possible error). A candidate displaces the
    quietest kept value only when its *guaranteed* count (count minus inherited error) is
    `margin` times larger, so a spray of one-off keys never pushes out a steady tenant and
    series do not flap. The displaced value's series are removed through `on_evict`, which
    keeps the total at k kept values plus `other`.

    With `displace=False` a value once admitted keeps its place for the object's lifetime:
    the first k values seen are kept, every later one is `other` from its first use. That is
    what counters need (a removed series takes its counts with it, and sums drop).
    """

    def __init__(self, k: int, *, track: int | None = None, margin: float = 2.0,
                 on_evict: Callable[[str], None] | None = None,
                 displace: bool = True) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.track = max(track or 8 * k, k + 1)
        self.margin = margin
        self.on_evict = on_evict
        self.displace = displace
        self._counts: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._kept: dict[str, None] = {}  # insertion order breaks ties: oldest goes first
        self.folded = 0

    @property
    def kept(self) -> frozenset[str]:
        return frozenset(self._kept)

    def _admit_once(self, value: str) -> str:
        """displace=False: admitted for good, or other; nothing to count."""
        if value in self._kept or value == OTHER:
            return value
        if len(self._kept) < self.k:
            self._kept[value] = None
            return value
        self.folded += 1
        return OTHER

    def label(self, value: str) -> str:
        if not self.displace:
            return self._admit_once(value)
        count = self._bump(value) - self._errors.get(value, 0)
        if value in self._kept:
            return value
        if value == OTHER:
            return OTHER
        if len(self._kept) < self.k:
            self._kept[value] = None
            return value
        quietest = min(self._kept, key=lambda v: self._counts.get(v, 0))
        if count > self.margin * self._counts.get(quietest, 0):
            del self._kept[quietest]
            self._kept[value] = None
            self._errors.pop(value, None)
            if self.on_evict is not None:
                self.on_evict(quietest)
            return value
        self.folded += 1
        return OTHER

    def _bump(self, value: str) -> int:
        counts = self._counts
        if value in counts:
            counts[value] += 1
            return counts[value]
        if len(counts) >= self.track:
            victim = min((v for v in counts if v not in self._kept), key=counts.__getitem__,
                         default=None)
            if victim is None:
                return 1
            inherited = counts.pop(victim)
            self._errors.pop(victim, None)
            self._errors[value] = inherited
            counts[value] = inherited + 1
            return counts[value]
        counts[value] = 1
        return 1
