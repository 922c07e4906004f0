"""The rate table: per region, versioned, what a coin earns in diamonds and a diamond pays. Pure.

Each region has one or more versions (catalog file, ``[[rates]]``). The version that applies at
a moment is the highest one whose ``from`` has passed; the lowest version applies until a later
one takes effect. A new rate is therefore published as a new version with a ``from`` in the
future: gifts and withdrawals priced before that moment keep the old rate, later ones use the
new one, and every ledger entry records the ``rate_version`` it used. A published version is
never edited (the ledger refers to it); a correction is a new version.

    rate_bp                  diamonds per coin, in basis points (10000 = 1 diamond per coin)
    cash_per_1000_diamonds   payout value of 1,000 diamonds in the region currency's minor unit
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from server.availability import ms_of

__all__ = ["Rate", "RateTable", "parse_rates", "MAX_RATE_BP"]

MAX_RATE_BP = 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class Rate:
    region: str
    version: int
    from_ms: int | None
    rate_bp: int
    cash_per_1000_diamonds: int
    currency: str

    def cash_for(self, diamonds: int) -> int:
        """Payout for `diamonds`, in minor units; fractions round down (never overpaid)."""
        return diamonds * self.cash_per_1000_diamonds // 1000

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class RateTable:
    versions: Mapping[str, tuple[Rate, ...]]  # region -> versions, ascending

    def current(self, region: str, now_ms: int) -> Rate:
        """The version in force for `region` at `now_ms` (region must be a catalog region)."""
        history = self.versions[region]
        applied = history[0]
        for rate in history[1:]:
            if rate.from_ms is not None and rate.from_ms <= now_ms:
                applied = rate
        return applied


def _int(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{what} must be an integer from {low} to {high}, got {value!r}")
    return value


def parse_rates(rows: list[dict[str, Any]], currencies: Mapping[str, str]) -> RateTable:
    """`[[rates]]` rows; every region (key of `currencies`) needs at least one version."""
    by_region: dict[str, list[Rate]] = {region: [] for region in currencies}
    for row in rows:
        region = row["region"]
        if region not in currencies:
            raise ValueError(f"rate for unknown region {region!r}")
        what = f"rate {region} v{row.get('version')}"
        by_region[region].append(Rate(
            region,
            _int(row["version"], f"{what} version", 1, 10**9),
            ms_of(row["from"], f"{what} from") if "from" in row else None,
            _int(row["rate_bp"], f"{what} rate_bp", 0, MAX_RATE_BP),
            _int(row["cash_per_1000_diamonds"], f"{what} cash_per_1000_diamonds", 0, 10**9),
            currencies[region],
        ))
    table: dict[str, tuple[Rate, ...]] = {}
    for region, rates in by_region.items():
        if not rates:
            raise ValueError(f"region {region} has no rate")
        rates.sort(key=lambda rate: rate.version)
        if len({rate.version for rate in rates}) != len(rates):
            raise ValueError(f"region {region} has a rate version twice")
        for before, after in zip(rates, rates[1:], strict=False):
            if after.from_ms is None or (before.from_ms is not None and after.from_ms <= before.from_ms):
                raise ValueError(f"rate {region} v{after.version} must take effect after v{before.version}")
        table[region] = tuple(rates)
    return RateTable(table)
