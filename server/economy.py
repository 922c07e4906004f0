"""The economy's rules, pure: what a gift costs, what it earns, what a bundle credits.

No I/O and no awaits. The Redis scripts enforce the same rules atomically (balance checks,
idempotency); this module decides every amount *before* a script runs, from the server's
catalog only: a client never names a price.
"""

from __future__ import annotations

import dataclasses

from server.auth import Principal
from server.catalog import MAX_COINS, Bundle, Catalog, Gift
from server.codec import SendGift
from server.errors import Forbidden, InvalidCount, SelfGift

__all__ = ["GiftCharge", "price_gift", "diamonds_for", "RechargeCredit", "recharge_credit", "BP"]

BP = 10_000  # basis points in one unit


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


def diamonds_for(coins: int, rate_bp: int) -> int:
    """Diamonds a creator earns for `coins` of gifts; fractions round down (never minted)."""
    return coins * rate_bp // BP


def price_gift(catalog: Catalog, sender: Principal, request: SendGift, *, rate_bp: int) -> GiftCharge:
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
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RechargeCredit:
    """What a paid order credits: bought coins and bonus coins, ledgered separately."""

    coins: int
    bonus_coins: int
    price: int
    currency: str
    region: str


def recharge_credit(catalog: Catalog, bundle: Bundle, region_code: str | None) -> RechargeCredit:
    region = catalog.region(region_code)
    if region.code not in bundle.prices:
        # A bundle not sold in a region falls back to the default region's price.
        region = catalog.region(None)
    return RechargeCredit(bundle.coins, bundle.bonus_coins, bundle.prices[region.code], region.currency, region.code)
