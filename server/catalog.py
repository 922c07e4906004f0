"""The catalog: regions, bundles, gifts, goods, rates and campaigns. Pure; loaded once.

The catalog is data (`server/data/catalog.toml` by default, or `Settings.catalog_path`),
validated on load so a bad file stops the server at start rather than mis-pricing a gift.
Prices are integers in the region currency's minor unit; coin amounts are integers.
A region has a currency and a minimum age for buying and gifting. Gifts and goods may be
limited to regions and to a time window (`availability.py`); the rate table is `rates.py`,
recharge campaigns `promotions.py`.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from server.availability import Availability, parse_availability
from server.errors import ConfigError, NotAvailable, UnknownBundle, UnknownGift, UnknownItem, UnknownRegion
from server.promotions import Campaign, parse_campaigns
from server.rates import RateTable, parse_rates

__all__ = ["Bundle", "Gift", "Good", "Region", "Catalog", "load_catalog", "parse_catalog", "bundled_catalog_text",
           "MAX_COINS", "GOOD_KINDS"]

ID_PATTERN = re.compile(r"^[a-z0-9_]{1,40}$")
# Every amount giftcast handles stays far below 2**53 so it is exact in Lua's doubles,
# JSON numbers and msgpack alike.
MAX_COINS = 10**12


@dataclasses.dataclass(frozen=True, slots=True)
class Region:
    code: str
    currency: str
    min_age: int = 18


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
    availability: Availability = Availability()

    def to_wire(self) -> dict[str, Any]:
        return _wire(self)


GOOD_KINDS = ("effect", "filter", "badge")


@dataclasses.dataclass(frozen=True, slots=True)
class Good:
    """A virtual good bought with coins (an effect, a filter, an event badge) for the inventory."""

    id: str
    name: str
    kind: str
    coins: int
    availability: Availability = Availability()

    def to_wire(self) -> dict[str, Any]:
        return _wire(self)


def _wire(item: Gift | Good) -> dict[str, Any]:
    """A catalog item as clients see it: its fields, with its availability flattened in."""
    wire = {f.name: getattr(item, f.name) for f in dataclasses.fields(item) if f.name != "availability"}
    return wire | item.availability.to_wire()


@dataclasses.dataclass(frozen=True, slots=True)
class Catalog:
    default_region: str
    regions: Mapping[str, Region]
    bundles: Mapping[str, Bundle]
    gifts: Mapping[str, Gift]
    goods: Mapping[str, Good]
    rates: RateTable
    campaigns: Mapping[str, Campaign]

    def gift(self, gift_id: object) -> Gift:
        if not isinstance(gift_id, str) or gift_id not in self.gifts:
            raise UnknownGift(f"no gift {str(gift_id)[:40]!r} in the catalog")
        return self.gifts[gift_id]

    def bundle(self, bundle_id: object) -> Bundle:
        if not isinstance(bundle_id, str) or bundle_id not in self.bundles:
            raise UnknownBundle(f"no bundle {str(bundle_id)[:40]!r} in the catalog")
        return self.bundles[bundle_id]

    def good(self, good_id: object) -> Good:
        if not isinstance(good_id, str) or good_id not in self.goods:
            raise UnknownItem(f"no item {str(good_id)[:40]!r} in the catalog")
        return self.goods[good_id]

    def region(self, code: str | None) -> Region:
        """The region for `code`; None falls back to the default region."""
        code = code or self.default_region
        if code not in self.regions:
            raise UnknownRegion(f"no region {code[:8]!r}")
        return self.regions[code]

    def home_region(self, code: str | None) -> Region:
        """A user's region: the profile's, or the default one when unset or not (any more) known."""
        return self.regions.get(code or "", self.regions[self.default_region])

    def bundle_price(self, bundle: Bundle, region: Region) -> int:
        if region.code not in bundle.prices:
            raise NotAvailable(f"{bundle.id} is not sold in {region.code}")
        return bundle.prices[region.code]

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

    def gift_list(self, region: str, now_ms: int) -> list[dict[str, Any]]:
        """Gifts a sender in `region` may send now, cheapest first."""
        return [g.to_wire() for g in sorted(self.gifts.values(), key=lambda g: g.coins)
                if g.availability.allows(region, now_ms)]

    def goods_list(self, region: str, now_ms: int) -> list[dict[str, Any]]:
        """Goods a buyer in `region` may buy now, cheapest first."""
        return [g.to_wire() for g in sorted(self.goods.values(), key=lambda g: (g.coins, g.id))
                if g.availability.allows(region, now_ms)]


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate a catalog file (default: the bundled one)."""
    if path is None:
        return parse_catalog(bundled_catalog_text(), "bundled catalog")
    return parse_catalog(path.read_text("utf-8"), str(path))


def bundled_catalog_text() -> str:
    return importlib.resources.files("server.data").joinpath("catalog.toml").read_text("utf-8")


def parse_catalog(text: str, source: str) -> Catalog:
    """Validate catalog TOML text; ConfigError naming `source` and the problem."""
    try:
        return _build(tomllib.loads(text))
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
    regions = {code: Region(code, str(spec["currency"]), _positive_int(spec.get("min_age", 18), f"{code} min_age"))
               for code, spec in raw["regions"].items()}
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
            parse_availability(row, f"gift {gid}", regions),
        )
    if not gifts or not bundles:
        raise ValueError("a catalog needs at least one gift and one bundle")
    goods: dict[str, Good] = {}
    for row in raw.get("goods", []):
        good_id = _checked_id(row["id"], goods, "good")
        if row["kind"] not in GOOD_KINDS:
            raise ValueError(f"good {good_id} kind must be one of {', '.join(GOOD_KINDS)}")
        goods[good_id] = Good(good_id, str(row["name"]), row["kind"], _positive_int(row["coins"], f"{good_id} coins"),
                              parse_availability(row, f"good {good_id}", regions))
    rates = parse_rates(raw.get("rates", []), {code: region.currency for code, region in regions.items()})
    campaigns = parse_campaigns(raw.get("campaigns", []), regions, _checked_id)
    return Catalog(default_region, regions, bundles, gifts, goods, rates, campaigns)
