"""Test factories shared by store- and server-level tests (real Valkey, real scripts)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import redis.asyncio as aioredis

from server import keys
from server.catalog import Catalog, load_catalog
from server.economy import recharge_credit
from server.live_store import LiveStore
from server.order_store import OrderStore
from server.scripts import Scripts
from server.split_gift import SplitGiftStore
from server.wallet_store import WalletStore

_payments = itertools.count(1)


@dataclasses.dataclass
class Stores:
    redis: aioredis.Redis
    catalog: Catalog
    wallets: WalletStore
    orders: OrderStore
    lives: LiveStore
    scripts: Scripts

    async def fund(self, user: str, bundle_id: str = "coins_70") -> int:
        """Buy and pay a bundle through the real order path; returns the new balance."""
        bundle = self.catalog.bundle(bundle_id)
        order = await self.orders.create(user, bundle, recharge_credit(self.catalog, bundle, None), "card")
        result = await self.orders.credit(order["id"], f"pay_{next(_payments)}", order["price"], order["currency"], "card")
        return result.balance

    async def set_coins(self, user: str, coins: int) -> None:
        """Seed a balance by the book: an order for exactly `coins`, paid."""
        order_id = f"{user}.{next(_payments):016d}"
        await self.redis.hset(keys.order(user, order_id), mapping={
            "status": "pending", "coins": coins, "bonus_coins": 0, "price": 1, "currency": "USD"})
        await self.orders.credit(order_id, f"seed_{order_id}", 1, "USD", "card")

    async def ledger_sum(self, user: str, unit: str) -> int:
        rows = await self.redis.xrange(keys.ledger(user))
        return sum(int(f[b"delta"]) for _, f in rows if f[b"unit"].decode() == unit)


def make_stores(client: aioredis.Redis, *, idempotency_ttl_s: int = 48 * 3600, history_len: int = 1000) -> Stores:
    scripts = Scripts.register(client)
    return Stores(
        client, load_catalog(),
        WalletStore(client, scripts, idempotency_ttl_s=idempotency_ttl_s, history_len=history_len),
        OrderStore(client, scripts),
        LiveStore(client, scripts, history_len=history_len),
        scripts,
    )


def make_split_gifts(stores: Stores, *, recovery_s: float = 5.0, after_debit: Callable[[], None] | None = None,
                     idempotency_ttl_s: int = 48 * 3600) -> SplitGiftStore:
    """The Redis Cluster gift path (debit, credit, complete) on `stores`' client."""
    return SplitGiftStore(stores.redis, stores.scripts, idempotency_ttl_s=idempotency_ttl_s, history_len=1000,
                          recovery_s=recovery_s, after_debit=after_debit)
