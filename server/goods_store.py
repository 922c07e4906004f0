"""GoodsStore: buying virtual goods with coins, and inventories, in Redis (`buy_goods.lua`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import redis.asyncio as aioredis

from server import keys
from server.economy import GoodsPurchase, SpendCaps
from server.scripts import Scripts
from server.wallet_store import reply_or_raise

__all__ = ["GoodsStore", "PurchaseReceipt"]


@dataclasses.dataclass(frozen=True, slots=True)
class PurchaseReceipt:
    good_id: str
    count: int
    coins_spent: int
    balance: int
    owned: int  # how many of this good the buyer owns now
    ts: int
    replay: bool

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class GoodsStore:
    def __init__(self, client: aioredis.Redis, scripts: Scripts, *, idempotency_ttl_s: int, spend_caps: SpendCaps):
        self._client = client
        self._scripts = scripts
        self._idempotency_ttl_s = idempotency_ttl_s
        self._spend_caps = spend_caps

    async def buy(self, purchase: GoodsPurchase) -> PurchaseReceipt:
        buyer = purchase.buyer
        reply = await self._scripts.buy_goods(
            keys=[keys.wallet(buyer), keys.ledger(buyer), keys.operation(buyer, "goods", purchase.key),
                  keys.inventory(buyer), keys.limits(buyer)],
            args=[purchase.good.id, purchase.count, purchase.coins, purchase.fingerprint, self._idempotency_ttl_s,
                  purchase.key, self._spend_caps.day, self._spend_caps.week],
        )
        coins, balance, owned, ts, replay = reply_or_raise(reply)
        return PurchaseReceipt(purchase.good.id, purchase.count, int(coins), int(balance), int(owned), int(ts),
                               bool(int(replay)))

    async def inventory(self, user_id: str) -> dict[str, int]:
        rows = await self._client.hgetall(keys.inventory(user_id))
        return {name.decode(): int(count) for name, count in sorted(rows.items())}
