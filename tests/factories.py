"""Test factories shared by store- and server-level tests (real Valkey, real scripts)."""

from __future__ import annotations

import dataclasses
import itertools
import time

import redis.asyncio as aioredis

from server import keys
from server.bank import Bank, spend_caps
from server.catalog import Catalog, load_catalog
from server.economy import recharge_credit
from server.live_store import LiveStore
from server.order_store import OrderStore
from server.scripts import Scripts
from server.settings import Settings
from server.wallet_store import WalletStore

_payments = itertools.count(1)


@dataclasses.dataclass
class Stores:
    redis: aioredis.Redis
    catalog: Catalog
    wallets: WalletStore
    orders: OrderStore
    lives: LiveStore
    bank: Bank

    async def fund(self, user: str, bundle_id: str = "coins_70") -> int:
        """Buy and pay a bundle through the real order path; returns the new balance."""
        bundle = self.catalog.bundle(bundle_id)
        credit = recharge_credit(self.catalog, bundle, None, now_ms=int(time.time() * 1000))
        order = await self.orders.create(user, bundle, credit, "card")
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


def make_stores(client: aioredis.Redis, *, idempotency_ttl_s: int = 48 * 3600, history_len: int = 1000,
                catalog: Catalog | None = None, **settings: object) -> Stores:
    """Every store on `client`; `settings` overrides Settings fields (caps, limits, delays)."""
    scripts = Scripts.register(client)
    config = Settings(idempotency_ttl_s=idempotency_ttl_s).with_overrides(**settings)
    return Stores(
        client, catalog or load_catalog(),
        WalletStore(client, scripts, idempotency_ttl_s=idempotency_ttl_s, history_len=history_len,
                    spend_caps=spend_caps(config)),
        OrderStore(client, scripts),
        LiveStore(client, scripts, history_len=history_len),
        Bank.build(client, scripts, config),
    )
