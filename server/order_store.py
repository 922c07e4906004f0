"""OrderStore: recharge orders, their exactly-once crediting and reversal, in Redis.

An order id names its buyer (``<user_id>.<random>``) so a webhook that carries only the order
id finds the buyer's keys (and, on Redis Cluster, the buyer's slot) without an index.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any

import redis.asyncio as aioredis

from server import keys, locked_accounts
from server.auth import owner_of
from server.catalog import Bundle
from server.economy import RechargeCredit
from server.errors import UnknownOrder
from server.scripts import Scripts
from server.wallet_store import reply_or_raise

__all__ = ["OrderStore", "CreditResult", "ReversalResult", "buyer_of", "PAYMENT_METHODS", "REVERSAL_KINDS"]

PAYMENT_METHODS = ("card", "paypal", "wallet")
REVERSAL_KINDS = ("refund", "chargeback")


def buyer_of(order_id: object) -> str:
    """The buyer an order id names; UnknownOrder for anything that is not an order id."""
    if (buyer := owner_of(order_id)) is None:
        raise UnknownOrder(f"no order {str(order_id)[:80]!r}")
    return buyer


@dataclasses.dataclass(frozen=True, slots=True)
class CreditResult:
    order_id: str
    balance: int
    credited: int
    replay: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ReversalResult:
    order_id: str
    balance: int
    removed: int
    locked: bool
    replay: bool


_INT_FIELDS = frozenset({"coins", "bonus_coins", "price", "created_at", "paid_at", "failed_at", "promo_bonus",
                         "first_bonus", "credited", "reversed_at", "reversed_amount", "reversed_coins"})


def _decode(row: dict[bytes, bytes]) -> dict[str, Any]:
    """An order's fields; its `rev:<id>` fields (see reverse_order.lua) as `reversals`."""
    out: dict[str, Any] = {}
    reversals: dict[str, dict[str, int]] = {}
    for name, value in row.items():
        field = name.decode()
        if field.startswith("rev:"):
            amount, coins = value.decode().split(":")
            reversals[field[4:]] = {"amount": int(amount), "coins": int(coins)}
        else:
            out[field] = int(value) if field in _INT_FIELDS else value.decode()
    if reversals:
        out["reversals"] = reversals
    return out


class OrderStore:
    def __init__(self, client: aioredis.Redis, scripts: Scripts):
        self._client = client
        self._scripts = scripts

    async def create(self, buyer: str, bundle: Bundle, credit: RechargeCredit, method: str) -> dict[str, Any]:
        order_id = f"{buyer}.{secrets.token_hex(8)}"
        now_ms = int(time.time() * 1000)
        order = {
            "id": order_id, "buyer": buyer, "bundle_id": bundle.id, "coins": credit.coins,
            "bonus_coins": credit.bonus_coins, "price": credit.price, "currency": credit.currency,
            "region": credit.region, "method": method, "status": "pending", "created_at": now_ms,
            "promo": credit.promotion.campaign, "promo_bonus": credit.promotion.bonus,
            "first_promo": credit.promotion.first_campaign, "first_bonus": credit.promotion.first_bonus,
        }
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.order(buyer, order_id), mapping=order)
            pipe.zadd(keys.orders(buyer), {order_id: now_ms})
            await pipe.execute()
        return order

    async def get(self, order_id: str) -> dict[str, Any]:
        buyer = buyer_of(order_id)
        row = await self._client.hgetall(keys.order(buyer, order_id))
        if not row:
            raise UnknownOrder(f"no order {order_id!r}")
        return _decode(row)

    async def list(self, buyer: str, *, limit: int = 50) -> list[dict[str, Any]]:
        ids = await self._client.zrevrange(keys.orders(buyer), 0, limit - 1)
        async with self._client.pipeline(transaction=False) as pipe:
            for order_id in ids:
                pipe.hgetall(keys.order(buyer, order_id.decode()))
            rows = await pipe.execute()
        return [_decode(row) for row in rows if row]

    async def credit(self, order_id: str, payment_id: str, amount: int, currency: str, method: str) -> CreditResult:
        buyer = buyer_of(order_id)
        reply = await self._scripts.credit_order(
            keys=[keys.order(buyer, order_id), keys.wallet(buyer), keys.ledger(buyer)],
            args=[order_id, payment_id, amount, currency, method],
        )
        balance, credited, replay, locked = reply_or_raise(reply)
        await locked_accounts.record(self._client, buyer, bool(locked))
        return CreditResult(order_id, int(balance), int(credited), bool(int(replay)))

    async def fail(self, order_id: str, payment_id: str, reason: str) -> str:
        buyer = buyer_of(order_id)
        reply = await self._scripts.fail_order(keys=[keys.order(buyer, order_id)], args=[payment_id, reason])
        (status,) = reply_or_raise(reply)
        return status.decode()

    async def reverse(self, order_id: str, kind: str, reversal_id: str, payment_id: str, amount: int,
                      currency: str) -> ReversalResult:
        """Take back the share of a paid order's coins that `amount` is of its price, once per
        `reversal_id` (`reverse_order.lua`); `kind` is refund or chargeback."""
        buyer = buyer_of(order_id)
        reply = await self._scripts.reverse_order(
            keys=[keys.order(buyer, order_id), keys.wallet(buyer), keys.ledger(buyer)],
            args=[order_id, kind, reversal_id, payment_id, amount, currency],
        )
        balance, removed, locked, replay = reply_or_raise(reply)
        await locked_accounts.record(self._client, buyer, bool(locked))
        return ReversalResult(order_id, int(balance), int(removed), bool(int(locked)), bool(int(replay)))
