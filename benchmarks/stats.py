"""Small numeric helpers shared by the load generator and the harness: latency histograms,
percentiles, medians. No I/O; cheap to import in the load generator."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

__all__ = ["Hist", "median", "ratio"]

BUCKET_US = 10  # histogram resolution
MAX_BUCKET = 2_000_000 // BUCKET_US  # latencies above 2 s share the last bucket (max is exact)


class Hist:
    """A latency histogram in 10 µs buckets up to 2 s, plus the exact maximum.

    `add` is on the load generator's hot path: one division, one list increment, one compare.
    """

    __slots__ = ("counts", "max_us", "n")

    def __init__(self) -> None:
        self.counts = [0] * (MAX_BUCKET + 1)
        self.max_us = 0
        self.n = 0

    def add(self, us: int) -> None:
        b = us // BUCKET_US
        self.counts[b if b < MAX_BUCKET else MAX_BUCKET] += 1
        if us > self.max_us:
            self.max_us = us

    def sparse(self) -> dict[int, int]:
        """Non-empty buckets, to send over a pipe (n is derived from them)."""
        return {i: c for i, c in enumerate(self.counts) if c}

    @classmethod
    def merged(cls, parts: Iterable[tuple[Mapping[int, int], int]]) -> Hist:
        """A histogram from (sparse buckets, max_us) pairs."""
        hist = cls()
        for buckets, max_us in parts:
            for i, c in buckets.items():
                hist.counts[int(i)] += c
                hist.n += c
            hist.max_us = max(hist.max_us, max_us)
        return hist

    def percentile(self, p: float) -> float | None:
        """The p-th percentile in ms (bucket midpoint), or None if empty."""
        total = sum(self.counts) if self.n == 0 else self.n
        if total == 0:
            return None
        rank = p / 100 * total
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank and c:
                return min((i + 0.5) * BUCKET_US, self.max_us) / 1000
        return self.max_us / 1000

    def summary(self) -> dict[str, float | None]:
        return {"p50_ms": self.percentile(50), "p99_ms": self.percentile(99),
                "max_ms": self.max_us / 1000 if self.n else None}


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b
