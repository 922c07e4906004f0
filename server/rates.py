"""The rate table: per region, versioned, what a coin earns in diamonds and a diamond pays. Pure.

Each region has one or more versions: in the catalog file (``[[rates]]``) and published at run
time by an admin (`rate_store.py`, kept in Redis, merged here by `with_published`). The version
that applies at a moment is the highest one whose ``from`` has passed; the lowest version
applies until a later one takes effect. A new rate is therefore published as a new version with
a ``from`` in the future: gifts and withdrawals priced before that moment keep the old rate,
later ones use the new one, and every ledger entry records the ``rate_version`` it used. A
published version is never edited (the ledger refers to it); a correction is a new version.

    rate_bp                  diamonds per coin, in basis points (10000 = 1 diamond per coin)
    cash_per_1000_diamonds   payout value of 1,000 diamonds in the region currency's minor unit
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from server.availability import ms_of
from server.errors import InvalidField

__all__ = ["Rate", "RateTable", "RateChange", "parse_rates", "rate_change", "MAX_RATE_BP", "MAX_CASH_PER_1000"]

MAX_RATE_BP = 1_000_000
MAX_CASH_PER_1000 = 10**9


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

    def latest(self, region: str) -> Rate:
        """The highest version of `region`, in force or scheduled."""
        return self.versions[region][-1]

    def with_published(self, published: list[Rate]) -> RateTable:
        """This table plus versions published at run time; ValueError if a version number is
        taken by a different rate, or the versions of a region do not take effect in order."""
        merged = {region: {rate.version: rate for rate in history} for region, history in self.versions.items()}
        for rate in published:
            known = merged[rate.region].setdefault(rate.version, rate)
            if known != rate:
                raise ValueError(f"rate {rate.region} v{rate.version} is published twice, differently")
        return RateTable({region: _in_order(region, list(by_version.values()))
                          for region, by_version in merged.items()})


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
            _int(row["cash_per_1000_diamonds"], f"{what} cash_per_1000_diamonds", 0, MAX_CASH_PER_1000),
            currencies[region],
        ))
    for region, rates in by_region.items():
        if not rates:
            raise ValueError(f"region {region} has no rate")
        if len({rate.version for rate in rates}) != len(rates):
            raise ValueError(f"region {region} has a rate version twice")
    return RateTable({region: _in_order(region, rates) for region, rates in by_region.items()})


def _in_order(region: str, rates: list[Rate]) -> tuple[Rate, ...]:
    """`rates` by version; ValueError unless each later version takes effect after the one before."""
    rates = sorted(rates, key=lambda rate: rate.version)
    for before, after in zip(rates, rates[1:], strict=False):
        if after.from_ms is None or (before.from_ms is not None and after.from_ms <= before.from_ms):
            raise ValueError(f"rate {region} v{after.version} must take effect after v{before.version}")
    return tuple(rates)


@dataclasses.dataclass(frozen=True, slots=True)
class RateChange:
    """An admin's request to publish a rate version (validated; the version number and the
    check that `from_ms` is late enough are publish_rate.lua's)."""

    region: str
    rate_bp: int
    cash_per_1000_diamonds: int
    from_ms: int | None  # None: as early as allowed


def rate_change(table: RateTable, data: Mapping[str, Any]) -> RateChange:
    """`{"region", "rate_bp", "cash_per_1000_diamonds", "from"?}` (from: ms since epoch);
    InvalidField for anything else."""
    region, from_ms = data.get("region"), data.get("from")
    if not isinstance(region, str) or region not in table.versions:
        raise InvalidField("region must be one of the catalog's regions")
    try:
        rate_bp = _int(data.get("rate_bp"), "rate_bp", 0, MAX_RATE_BP)
        cash = _int(data.get("cash_per_1000_diamonds"), "cash_per_1000_diamonds", 0, MAX_CASH_PER_1000)
        from_ms = None if from_ms is None else _int(from_ms, "from", 0, 10**15)
    except ValueError as exc:
        raise InvalidField(str(exc)) from None
    return RateChange(region, rate_bp, cash, from_ms)
