"""Where and when a catalog item may be bought: a set of regions and a time window. Pure.

Gifts, goods and campaigns share it. An empty region set means every region; a missing bound
means an open window. Times come from the catalog file as TOML datetimes with an offset
(``2026-12-24T00:00:00Z``) and are kept as ms since the epoch; the window is half-open,
``from <= now < until``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["Availability", "parse_availability", "ms_of"]


@dataclasses.dataclass(frozen=True, slots=True)
class Availability:
    regions: frozenset[str] = frozenset()
    from_ms: int | None = None
    until_ms: int | None = None

    def in_region(self, region: str) -> bool:
        return not self.regions or region in self.regions

    def in_window(self, now_ms: int) -> bool:
        return (self.from_ms is None or self.from_ms <= now_ms) and (self.until_ms is None or now_ms < self.until_ms)

    def allows(self, region: str, now_ms: int) -> bool:
        return self.in_region(region) and self.in_window(now_ms)

    def to_wire(self) -> dict[str, Any]:
        return {"regions": sorted(self.regions), "available_from": self.from_ms, "available_until": self.until_ms}


def ms_of(value: Any, what: str) -> int:
    """A TOML datetime with an offset, as ms since the epoch."""
    if not isinstance(value, datetime.datetime) or value.tzinfo is None:
        raise ValueError(f"{what} must be a date-time with an offset, like 2026-12-24T00:00:00Z")
    return int(value.timestamp() * 1000)


def parse_availability(row: Mapping[str, Any], what: str, known_regions: Collection[str]) -> Availability:
    """`regions`, `available_from`, `available_until` of a catalog row (all optional)."""
    regions = row.get("regions", [])
    if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
        raise ValueError(f"{what} regions must be a list of region codes")
    if unknown := set(regions) - set(known_regions):
        raise ValueError(f"{what} names unknown regions {sorted(unknown)}")
    start = ms_of(row["available_from"], f"{what} available_from") if "available_from" in row else None
    end = ms_of(row["available_until"], f"{what} available_until") if "available_until" in row else None
    if start is not None and end is not None and end <= start:
        raise ValueError(f"{what} available_until must be after available_from")
    return Availability(frozenset(regions), start, end)
