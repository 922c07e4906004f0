"""Buying virtual goods on a real Valkey: one atomic script, inventory, idempotency, races."""

import asyncio

import pytest
import redis.asyncio as aioredis

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift, price_goods
from server.errors import IdempotencyConflict, InsufficientFunds
from server.profiles import Profile
from tests.factories import make_stores, now_ms

BOB = Principal("bob", "viewer")


@pytest.fixture
def stores(redis):
    return make_stores(redis)


def purchase(stores, good="neon_filter", count=1, key="p1"):
    return price_goods(stores.catalog, BOB, Profile("bob"), good, count, key, now_ms=now_ms(),
                       require_birth_date=False)


async def test_purchase_debits_coins_into_the_inventory_with_a_ledger_entry(stores):
    await stores.set_coins("bob", 500)
    receipt = await stores.bank.goods.buy(purchase(stores, count=2))
    assert (receipt.coins_spent, receipt.balance, receipt.owned, receipt.replay) == (198, 302, 2, False)
    assert await stores.bank.goods.inventory("bob") == {"neon_filter": 2}
    entry = (await stores.wallets.ledger("bob"))[0]
    assert (entry["kind"], entry["delta"], entry["good"], entry["count"], entry["ref"]) == (
        "purchase", -198, "neon_filter", 2, "goods:p1")


async def test_same_key_charges_once(stores):
    await stores.set_coins("bob", 500)
    first = await stores.bank.goods.buy(purchase(stores))
    again = await stores.bank.goods.buy(purchase(stores))
    assert again.replay and (again.balance, again.owned) == (first.balance, first.owned) == (401, 1)
    assert (await stores.wallets.balances("bob")).coins == 401


async def test_same_key_for_another_purchase_is_a_conflict(stores):
    await stores.set_coins("bob", 500)
    await stores.bank.goods.buy(purchase(stores))
    with pytest.raises(IdempotencyConflict):
        await stores.bank.goods.buy(purchase(stores, good="vip_badge"))
    assert await stores.bank.goods.inventory("bob") == {"neon_filter": 1}


async def test_insufficient_coins_change_nothing(stores, redis):
    await stores.set_coins("bob", 98)
    with pytest.raises(InsufficientFunds):
        await stores.bank.goods.buy(purchase(stores))
    assert not await redis.exists(keys.inventory("bob"), keys.operation("bob", "goods", "p1"), keys.limits("bob"))
    assert (await stores.wallets.balances("bob")).coins == 98


async def test_script_rejects_bad_amounts_before_any_write(stores, redis):
    await stores.set_coins("bob", 500)
    for count, coins in [(0, 99), (1, 0), (1.5, 99), (1, -99), ("x", 1)]:
        reply = await stores.bank.goods._scripts.buy_goods(
            keys=[keys.wallet("bob"), keys.ledger("bob"), keys.operation("bob", "goods", "raw"),
                  keys.inventory("bob"), keys.limits("bob")],
            args=["neon_filter", count, coins, "fp", 60, "raw", 10**6, 10**6])
        assert reply == [b"err", b"invalid_count"]
    assert (await stores.wallets.balances("bob")).coins == 500


async def test_purchases_and_gifts_racing_spend_the_balance_exactly_once(stores, valkey_url):
    """1,000 coins; 20 neon filters (99 each) and 180 pandas (5 each) asked for at once on 6
    connections. Whatever wins, coins never go below zero, the balance ends below the cheapest
    price, and every coin spent is either a good owned or a diamond credited."""
    await stores.set_coins("bob", 1000)
    await stores.lives.set_state("alice", "open")
    clients = [aioredis.Redis.from_url(valkey_url) for _ in range(6)]
    try:
        per_client = [make_stores(client) for client in clients]

        async def attempt(i):
            store = per_client[i % 6]
            try:
                if i % 10 == 0:
                    return (await store.bank.goods.buy(purchase(store, key=f"p{i}"))).coins_spent
                charge = price_gift(store.catalog, BOB, SendGift(i, "alice", "panda", 1, f"g{i}"), rate_bp=10_000)
                return (await store.wallets.apply_gift(charge)).coins_spent
            except InsufficientFunds:
                return 0

        spent = await asyncio.gather(*(attempt(i) for i in range(200)))
    finally:
        for client in clients:
            await client.aclose()
    balance = (await stores.wallets.balances("bob")).coins
    assert balance >= 0 and sum(spent) + balance == 1000 and balance < 5
    owned = (await stores.bank.goods.inventory("bob")).get("neon_filter", 0)
    assert owned * 99 + (await stores.wallets.balances("alice")).diamonds == sum(spent)
    assert await stores.ledger_sum("bob", "coins") == balance
