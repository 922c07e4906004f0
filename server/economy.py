"""The economy's rules, pure: who may spend, what a gift costs and earns, what a recharge or a
purchase credits or charges, what an admin may grant.

No I/O and no awaits; the clock is passed in (`now_ms`). The Redis scripts enforce the rules
that need the current state atomically (balances, idempotency, account locks, spending caps);
this module decides every amount *before* a script runs, from the server's catalog only: a
client never names a price.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from server.auth import Principal
from server.catalog import MAX_COINS, Bundle, Catalog, Gift, Good, Region
from server.codec import IDEMPOTENCY_KEY, SendGift
from server.errors import (
    AccountRestricted, AgeRestricted, Forbidden, InvalidCount, InvalidField, InvalidIdempotencyKey, NotAvailable,
    SelfGift,
)
from server.profiles import NO_GIFT_ACCOUNTS, Profile, age_on
from server.promotions import OrderPromotion, promotions_for
from server.rates import RateTable

__all__ = [
    "GiftCharge", "price_gift", "gift_charge", "diamonds_for", "RechargeCredit", "recharge_credit", "BP",
    "SpendCaps", "spender_region", "GoodsPurchase", "price_goods", "BalanceGrant", "reward_grant",
    "balance_adjustment", "check_key", "check_reason", "utc_date", "MAX_GOODS_COUNT",
]

BP = 10_000  # basis points in one unit
MAX_GOODS_COUNT = 100
_REASON = re.compile(r"^[^\x00-\x1f]{1,200}$")


@dataclasses.dataclass(frozen=True, slots=True)
class SpendCaps:
    """Platform caps on coins spent (gifts and goods) per UTC day and per ISO week."""

    day: int
    week: int


def utc_date(now_ms: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(now_ms / 1000, datetime.UTC).date()


def check_key(value: object) -> str:
    """An idempotency key as the WebSocket takes it: 1-64 of A-Z a-z 0-9 _ . : -"""
    if not isinstance(value, str) or not IDEMPOTENCY_KEY.fullmatch(value):
        raise InvalidIdempotencyKey("key must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return value


def spender_region(catalog: Catalog, profile: Profile, now_ms: int, *, require_birth_date: bool) -> Region:
    """The region a user buys and gifts in, once their age allows it there (AgeRestricted)."""
    region = catalog.home_region(profile.region)
    if profile.birth_date is None:
        if require_birth_date:
            raise AgeRestricted("a birth date on file is required to buy or send gifts")
    elif age_on(profile.birth_date, utc_date(now_ms)) < region.min_age:
        raise AgeRestricted(f"buying and gifting need age {region.min_age}+ in {region.code}")
    return region


@dataclasses.dataclass(frozen=True, slots=True)
class GiftCharge:
    """Everything the gift script needs, all amounts decided by the server."""

    sender: str
    creator: str
    gift: Gift
    count: int
    coins: int
    diamonds: int
    rate_bp: int
    key: str
    fingerprint: str
    rate_version: int = 0


def diamonds_for(coins: int, rate_bp: int) -> int:
    """Diamonds a creator earns for `coins` of gifts; fractions round down (never minted)."""
    return coins * rate_bp // BP


def price_gift(catalog: Catalog, sender: Principal, request: SendGift, *, rate_bp: int,
               rate_version: int = 0) -> GiftCharge:
    """The charge for a gift at a given rate (the static rules: role, self-gift, amount)."""
    if not sender.can_spend:
        raise Forbidden(f"a {sender.role} token cannot send gifts")
    if request.room == sender.user_id:
        raise SelfGift("a creator cannot gift into their own room")
    gift = catalog.gift(request.gift_id)
    coins = gift.coins * request.count
    if coins > MAX_COINS:
        raise InvalidCount("that many gifts exceeds the largest amount one gift may move")
    return GiftCharge(
        sender=sender.user_id,
        creator=request.room,
        gift=gift,
        count=request.count,
        coins=coins,
        diamonds=diamonds_for(coins, rate_bp),
        rate_bp=rate_bp,
        key=request.key,
        fingerprint=request.fingerprint,
        rate_version=rate_version,
    )


def gift_charge(catalog: Catalog, sender: Principal, request: SendGift, *, sender_profile: Profile,
                creator_profile: Profile, now_ms: int, require_birth_date: bool, rates: RateTable | None = None
                ) -> GiftCharge:
    """Every rule of a gift: `price_gift`'s, the sender's age and region, both account types,
    the gift's regions and window; diamonds at the rate in force in the creator's region (in
    `rates`, default the catalog's)."""
    rate = (rates or catalog.rates).current(catalog.home_region(creator_profile.region).code, now_ms)
    charge = price_gift(catalog, sender, request, rate_bp=rate.rate_bp, rate_version=rate.version)
    region = spender_region(catalog, sender_profile, now_ms, require_birth_date=require_birth_date)
    if sender_profile.account_type in NO_GIFT_ACCOUNTS or creator_profile.account_type in NO_GIFT_ACCOUNTS:
        raise AccountRestricted("government and political accounts cannot send or receive gifts")
    if not charge.gift.availability.allows(region.code, now_ms):
        raise NotAvailable(f"{charge.gift.id} cannot be sent from {region.code} now")
    return charge


@dataclasses.dataclass(frozen=True, slots=True)
class RechargeCredit:
    """What a paid order credits: bought coins, the bundle's bonus and any campaign bonuses
    (each a separate ledger entry), at the buyer region's price."""

    coins: int
    bonus_coins: int
    price: int
    currency: str
    region: str
    promotion: OrderPromotion = OrderPromotion()


def recharge_credit(catalog: Catalog, bundle: Bundle, region_code: str | None, *, now_ms: int) -> RechargeCredit:
    """A bundle bought from `region_code` (the buyer's profile region; None: the default) at
    `now_ms`, with the campaigns running then. NotAvailable if the bundle is not sold there."""
    region = catalog.home_region(region_code)
    price = catalog.bundle_price(bundle, region)
    promotion = promotions_for(catalog.campaigns.values(), bundle.coins, region.code, now_ms)
    return RechargeCredit(bundle.coins, bundle.bonus_coins, price, region.currency, region.code, promotion)


@dataclasses.dataclass(frozen=True, slots=True)
class GoodsPurchase:
    buyer: str
    good: Good
    count: int
    coins: int
    key: str

    @property
    def fingerprint(self) -> str:
        """What a retry with the same key must repeat exactly."""
        return f"{self.good.id}|{self.count}"


def price_goods(catalog: Catalog, buyer: Principal, profile: Profile, good_id: object, count: object, key: object,
                *, now_ms: int, require_birth_date: bool) -> GoodsPurchase:
    if not buyer.can_spend:
        raise Forbidden(f"a {buyer.role} token cannot buy goods")
    good = catalog.good(good_id)
    if type(count) is not int or not 1 <= count <= MAX_GOODS_COUNT:
        raise InvalidCount(f"count must be an integer from 1 to {MAX_GOODS_COUNT}")
    region = spender_region(catalog, profile, now_ms, require_birth_date=require_birth_date)
    if not good.availability.allows(region.code, now_ms):
        raise NotAvailable(f"{good.id} cannot be bought in {region.code} now")
    return GoodsPurchase(buyer.user_id, good, count, good.coins * count, check_key(key))


@dataclasses.dataclass(frozen=True, slots=True)
class BalanceGrant:
    """An admin's reward (coins, positive) or adjustment (coins or diamonds, either sign)."""

    user: str
    kind: str  # "reward" or "adjustment"
    unit: str  # "coins" or "diamonds"
    delta: int
    reason: str
    admin: str
    key: str

    @property
    def fingerprint(self) -> str:
        return f"{self.kind}|{self.unit}|{self.delta}|{self.reason}"


def check_reason(value: object) -> str:
    if not isinstance(value, str) or not _REASON.fullmatch(value):
        raise InvalidField("reason must be 1-200 printable characters")
    return value


def reward_grant(admin: Principal, user: str, coins: object, reason: object, key: object) -> BalanceGrant:
    if admin.role != "admin":
        raise Forbidden("only admins grant rewards")
    if type(coins) is not int or not 1 <= coins <= MAX_COINS:
        raise InvalidCount("coins must be a positive integer")
    return BalanceGrant(user, "reward", "coins", coins, check_reason(reason), admin.user_id, check_key(key))


def balance_adjustment(admin: Principal, user: str, unit: object, delta: object, reason: object,
                       key: object) -> BalanceGrant:
    if admin.role != "admin":
        raise Forbidden("only admins adjust balances")
    if unit not in ("coins", "diamonds"):
        raise InvalidField("unit must be coins or diamonds")
    if type(delta) is not int or delta == 0 or abs(delta) > MAX_COINS:
        raise InvalidCount("delta must be a non-zero integer")
    return BalanceGrant(user, "adjustment", str(unit), delta, check_reason(reason), admin.user_id, check_key(key))
