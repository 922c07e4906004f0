"""OrderStore: recharge orders and their exactly-once crediting, in Redis.

An order id names its buyer (``<user_id>.<random>``) so a webhook that carries only the order
id finds the buyer's keys (and, on Redis Cluster, the buyer's slot) without an index.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import Any

import redis.asyncio as aioredis

from server import keys
from server.auth import USER_ID
from server.catalog import Bundle
from server.economy import RechargeCredit
from server.errors import UnknownOrder
from server.scripts import Scripts
from server.wallet_store import reply_or_raise

__all__ = ["OrderStore", "CreditResult", "buyer_of", "PAYMENT_METHODS"]

PAYMENT_METHODS = ("card", "paypal", "wallet")


def buyer_of(order_id: object) -> str:
    """The buyer an order id names; UnknownOrder for anything that is not an order id."""
    if isinstance(order_id, str) and order_id.count(".") == 1:
        user_id, _, suffix = order_id.partition(".")
        if USER_ID.fullmatch(user_id) and len(suffix) == 16 and suffix.isalnum():
            return user_id
    raise UnknownOrder(f"no order {str(order_id)[:80]!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class CreditResult:
    order_id: str
    balance: int
    credited: int
    replay: bool


_INT_FIELDS = frozenset({"coins", "bonus_coins", "price", "created_at", "paid_at", "failed_at"})


def _decode(row: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in row.items():
        field = name.decode()
        out[field] = int(value) if field in _INT_FIELDS else value.decode()
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
        balance, credited, replay = reply_or_raise(reply)
        return CreditResult(order_id, int(balance), int(credited), bool(int(replay)))

    async def fail(self, order_id: str, payment_id: str, reason: str) -> str:
        buyer = buyer_of(order_id)
        reply = await self._scripts.fail_order(keys=[keys.order(buyer, order_id)], args=[payment_id, reason])
        (status,) = reply_or_raise(reply)
        return status.decode()
