"""Test factories shared by store- and server-level tests (real Valkey, real scripts)."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from server import keys
from server.auth import Principal
from server.bank import Bank, spend_caps
from server.catalog import Catalog, bundled_catalog_text, load_catalog, parse_catalog
from server.codec import SendGift
from server.economy import balance_adjustment, price_gift, recharge_credit
from server.live_store import LiveStore
from server.order_store import OrderStore
from server.scripts import Scripts
from server.settings import Settings
from server.split_gift import SplitGiftStore
from server.wallet_store import GiftPolicy, WalletStore

_payments = itertools.count(1)
DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def toml_time(ms: int) -> str:
    """A TOML date-time literal (UTC) for `ms`."""
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def campaign_toml(campaign_id: str, kind: str, start_ms: int, end_ms: int, *, percent: int = 0, coins: int = 0,
                  regions: tuple[str, ...] = ()) -> str:
    lines = [f'id = "{campaign_id}"', f'kind = "{kind}"', f"available_from = {toml_time(start_ms)}",
             f"available_until = {toml_time(end_ms)}"]
    lines += [f"percent = {percent}"] * bool(percent) + [f"coins = {coins}"] * bool(coins)
    lines += ["regions = [" + ", ".join(f'"{r}"' for r in regions) + "]"] * bool(regions)
    return "[[campaigns]]\n" + "\n".join(lines) + "\n"


def running_campaigns(percent: int = 10, first_coins: int = 100) -> str:
    """A recharge_bonus "spring" and a first_recharge "hello" campaign, running today."""
    start, end = now_ms() - DAY_MS, now_ms() + DAY_MS
    return (campaign_toml("spring", "recharge_bonus", start, end, percent=percent)
            + campaign_toml("hello", "first_recharge", start, end, coins=first_coins))


def rate_toml(region: str, version: int, from_ms: int, rate_bp: int, cash_per_1000_diamonds: int) -> str:
    return (f'[[rates]]\nregion = "{region}"\nversion = {version}\nfrom = {toml_time(from_ms)}\n'
            f"rate_bp = {rate_bp}\ncash_per_1000_diamonds = {cash_per_1000_diamonds}\n")


def catalog_text(extra: str) -> str:
    """The bundled catalog with `extra` TOML appended (more rates, campaigns, gifts, goods)."""
    return bundled_catalog_text() + "\n" + extra


def catalog_with(extra: str) -> Catalog:
    return parse_catalog(catalog_text(extra), "test catalog")


def catalog_file(directory: Path, extra: str) -> Path:
    path = directory / "catalog.toml"
    path.write_text(catalog_text(extra))
    return path


@dataclasses.dataclass
class Stores:
    redis: aioredis.Redis
    catalog: Catalog
    wallets: WalletStore
    orders: OrderStore
    lives: LiveStore
    bank: Bank
    scripts: Scripts
    settings: Settings  # what the stores were built with

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

    async def set_diamonds(self, user: str, diamonds: int) -> None:
        """Seed diamonds by the book: an admin adjustment."""
        grant = balance_adjustment(Principal("root", "admin"), user, "diamonds", diamonds, "seed", f"seed{next(_payments)}")
        await self.bank.accounts.grant(grant)

    async def paid_order(self, user: str = "bob", bundle_id: str = "coins_700") -> dict:
        """A paid order (its payment id is pay_<order id>), through the real order path."""
        bundle = self.catalog.bundle(bundle_id)
        order = await self.orders.create(user, bundle, recharge_credit(self.catalog, bundle, None, now_ms=now_ms()),
                                         "card")
        await self.orders.credit(order["id"], "pay_" + order["id"], order["price"], order["currency"], "card")
        return await self.orders.get(order["id"])

    async def lock_by_chargeback(self, user: str = "bob") -> dict:
        """Pay 707 coins, gift 700 of them to alice, lose a chargeback: -700 coins, locked."""
        order = await self.paid_order(user)
        await self.lives.set_state("alice", "open")
        charge = price_gift(self.catalog, Principal(user, "viewer"), SendGift(1, "alice", "rainbow_puke", 7, "lk"),
                            rate_bp=10_000)
        await self.wallets.apply_gift(charge)
        await self.orders.reverse(order["id"], "chargeback", "dp_" + order["id"], order["payment_id"],
                                  order["price"], order["currency"])
        return order

    async def ledger_sum(self, user: str, unit: str) -> int:
        rows = await self.redis.xrange(keys.ledger(user))
        return sum(int(f[b"delta"]) for _, f in rows if f[b"unit"].decode() == unit)


def make_stores(client: aioredis.Redis, *, idempotency_ttl_s: int = 48 * 3600, history_len: int = 1000,
                catalog: Catalog | None = None, **settings: object) -> Stores:
    """Every store on `client`; `settings` overrides Settings fields (caps, limits, delays)."""
    scripts = Scripts.register(client)
    config = Settings(idempotency_ttl_s=idempotency_ttl_s).with_overrides(**settings)
    catalog = catalog or load_catalog()
    return Stores(
        client, catalog,
        WalletStore(client, scripts, idempotency_ttl_s=idempotency_ttl_s, history_len=history_len,
                    spend_caps=spend_caps(config), policy=GiftPolicy.from_settings(config)),
        OrderStore(client, scripts),
        LiveStore(client, scripts, history_len=history_len),
        Bank.build(client, scripts, config, catalog),
        scripts,
        config,
    )


def make_split_gifts(stores: Stores, *, recovery_s: float = 5.0, after_debit: Callable[[], None] | None = None,
                     idempotency_ttl_s: int = 48 * 3600) -> SplitGiftStore:
    """The Redis Cluster gift path (debit, credit, complete) on `stores`' client."""
    return SplitGiftStore(stores.redis, stores.scripts, idempotency_ttl_s=idempotency_ttl_s, history_len=1000,
                          recovery_s=recovery_s, spend_caps=spend_caps(stores.settings),
                          policy=GiftPolicy.from_settings(stores.settings), after_debit=after_debit)
