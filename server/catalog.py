"""The bundle and gift catalog: what coins cost and what gifts cost. Pure; loaded once.

The catalog is data (`server/data/catalog.toml` by default, or `Settings.catalog_path`),
validated on load so a bad file stops the server at start rather than mis-pricing a gift.
Prices are integers in the region currency's minor unit; coin amounts are integers.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.errors import ConfigError, UnknownBundle, UnknownGift, UnknownRegion

__all__ = ["Bundle", "Gift", "Catalog", "load_catalog", "MAX_COINS"]

ID_PATTERN = re.compile(r"^[a-z0-9_]{1,40}$")
# Every amount giftcast handles stays far below 2**53 so it is exact in Lua's doubles,
# JSON numbers and msgpack alike.
MAX_COINS = 10**12


@dataclasses.dataclass(frozen=True, slots=True)
class Region:
    code: str
    currency: str


@dataclasses.dataclass(frozen=True, slots=True)
class Bundle:
    id: str
    coins: int
    bonus_coins: int
    prices: Mapping[str, int]  # region code -> price in minor units

    @property
    def total_coins(self) -> int:
        return self.coins + self.bonus_coins


@dataclasses.dataclass(frozen=True, slots=True)
class Gift:
    id: str
    name: str
    coins: int
    tier: int
    combo: bool
    animation_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class Catalog:
    default_region: str
    regions: Mapping[str, Region]
    bundles: Mapping[str, Bundle]
    gifts: Mapping[str, Gift]

    def gift(self, gift_id: object) -> Gift:
        if not isinstance(gift_id, str) or gift_id not in self.gifts:
            raise UnknownGift(f"no gift {str(gift_id)[:40]!r} in the catalog")
        return self.gifts[gift_id]

    def bundle(self, bundle_id: object) -> Bundle:
        if not isinstance(bundle_id, str) or bundle_id not in self.bundles:
            raise UnknownBundle(f"no bundle {str(bundle_id)[:40]!r} in the catalog")
        return self.bundles[bundle_id]

    def region(self, code: str | None) -> Region:
        """The region for `code`; None falls back to the default region."""
        code = code or self.default_region
        if code not in self.regions:
            raise UnknownRegion(f"no region {code[:8]!r}")
        return self.regions[code]

    def bundles_for(self, region_code: str | None) -> list[dict[str, Any]]:
        """Bundles buyable in a region, priced in its currency, cheapest first."""
        region = self.region(region_code)
        rows = [
            {
                "id": b.id,
                "coins": b.coins,
                "bonus_coins": b.bonus_coins,
                "price": b.prices[region.code],
                "currency": region.currency,
                "region": region.code,
            }
            for b in self.bundles.values()
            if region.code in b.prices
        ]
        return sorted(rows, key=lambda row: row["price"])

    def gift_list(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(g) for g in sorted(self.gifts.values(), key=lambda g: g.coins)]


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate a catalog file (default: the bundled one)."""
    if path is None:
        text = importlib.resources.files("server.data").joinpath("catalog.toml").read_text("utf-8")
        source = "bundled catalog"
    else:
        text, source = path.read_text("utf-8"), str(path)
    try:
        raw = tomllib.loads(text)
        return _build(raw)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _positive_int(value: Any, what: str, *, zero_ok: bool = False) -> int:
    if type(value) is not int or value < (0 if zero_ok else 1) or value > MAX_COINS:
        raise ValueError(f"{what} must be an integer in range, got {value!r}")
    return value


def _checked_id(value: Any, seen: Mapping[str, object], what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ValueError(f"{what} id {value!r} must match {ID_PATTERN.pattern}")
    if value in seen:
        raise ValueError(f"duplicate {what} id {value!r}")
    return value


def _build(raw: dict[str, Any]) -> Catalog:
    regions = {code: Region(code, str(spec["currency"])) for code, spec in raw["regions"].items()}
    default_region = raw["default_region"]
    if default_region not in regions:
        raise ValueError(f"default_region {default_region!r} is not a region")
    bundles: dict[str, Bundle] = {}
    for row in raw["bundles"]:
        bid = _checked_id(row["id"], bundles, "bundle")
        prices = {r: _positive_int(p, f"{bid} price in {r}") for r, p in row["prices"].items()}
        if unknown := set(prices) - set(regions):
            raise ValueError(f"bundle {bid} is priced in unknown regions {sorted(unknown)}")
        if default_region not in prices:
            raise ValueError(f"bundle {bid} has no price in the default region")
        bundles[bid] = Bundle(
            bid,
            _positive_int(row["coins"], f"{bid} coins"),
            _positive_int(row.get("bonus_coins", 0), f"{bid} bonus_coins", zero_ok=True),
            prices,
        )
    gifts: dict[str, Gift] = {}
    for row in raw["gifts"]:
        gid = _checked_id(row["id"], gifts, "gift")
        gifts[gid] = Gift(
            gid,
            str(row["name"]),
            _positive_int(row["coins"], f"{gid} coins"),
            _positive_int(row["tier"], f"{gid} tier"),
            bool(row.get("combo", False)),
            _positive_int(row.get("animation_ms", 1000), f"{gid} animation_ms"),
        )
    if not gifts or not bundles:
        raise ValueError("a catalog needs at least one gift and one bundle")
    return Catalog(default_region, regions, bundles, gifts)
