"""Spending caps, self-set limits and admin grants on a real Valkey."""

import pytest

from server import keys
from server.account_store import window_ids
from server.auth import Principal
from server.codec import SendGift
from server.economy import balance_adjustment, price_gift, price_goods, reward_grant
from server.errors import IdempotencyConflict, InsufficientFunds, SpendingLimit
from server.profiles import Profile
from tests.factories import make_stores, now_ms

BOB = Principal("bob", "viewer")
ADMIN = Principal("root", "admin")


async def gift(stores, coins_each_panda=1, key="g"):
    charge = price_gift(stores.catalog, BOB, SendGift(1, "alice", "panda", coins_each_panda, key), rate_bp=10_000)
    return await stores.wallets.apply_gift(charge)


async def open_stores(redis, **settings):
    stores = make_stores(redis, **settings)
    await stores.set_coins("bob", 1000)
    await stores.lives.set_state("alice", "open")
    return stores


async def test_platform_day_cap_stops_spending(redis):
    stores = await open_stores(redis, spend_cap_day_coins=10)
    await gift(stores, 2, "g1")
    with pytest.raises(SpendingLimit):
        await gift(stores, 1, "g2")  # 10 + 5 > 10
    assert (await stores.wallets.balances("bob")).coins == 990


async def test_platform_week_cap_stops_spending(redis):
    stores = await open_stores(redis, spend_cap_week_coins=12)
    await gift(stores, 2, "g1")
    with pytest.raises(SpendingLimit):
        await gift(stores, 1, "g2")


async def test_yesterdays_spending_does_not_count_today(redis):
    stores = await open_stores(redis, spend_cap_day_coins=10)
    await gift(stores, 2, "g1")
    day, _ = window_ids(now_ms())
    await redis.hset(keys.limits("bob"), "spend_d_id", day - 1)  # as if that was yesterday
    await gift(stores, 2, "g2")
    view = await stores.bank.accounts.spending("bob", now_ms())
    assert (view["day"]["spent"], view["week"]["spent"]) == (10, 20)


async def test_goods_count_against_the_same_caps(redis):
    stores = await open_stores(redis, spend_cap_day_coins=100)
    await gift(stores, 1, "g1")
    purchase = price_goods(stores.catalog, BOB, Profile("bob"), "neon_filter", 1, "p1", now_ms=now_ms(),
                           require_birth_date=False)
    with pytest.raises(SpendingLimit):
        await stores.bank.goods.buy(purchase)  # 5 + 99 > 100


async def test_lowering_a_self_limit_applies_at_once(redis):
    stores = await open_stores(redis)
    await stores.bank.accounts.set_spend_limit("bob", "day", 7)
    await gift(stores, 1, "g1")
    with pytest.raises(SpendingLimit):
        await gift(stores, 1, "g2")


async def test_raising_a_self_limit_waits_for_the_delay(redis):
    stores = await open_stores(redis, spend_limit_raise_delay_s=3600)
    accounts = stores.bank.accounts
    await accounts.set_spend_limit("bob", "day", 7)
    await accounts.set_spend_limit("bob", "day", 100)
    view = (await accounts.spending("bob", now_ms()))["day"]
    assert view["self_limit"] == 7 and view["pending"]["self_limit"] == 100
    assert view["pending"]["applies_at"] >= now_ms() + 3_500_000
    with pytest.raises(SpendingLimit):
        await gift(stores, 2, "g1")
    await redis.hset(keys.limits("bob"), "self_d_next_at", now_ms() - 1)  # as if the delay had passed
    assert (await gift(stores, 2, "g1")).coins_spent == 10


async def test_removing_a_self_limit_also_waits(redis):
    stores = await open_stores(redis, spend_limit_raise_delay_s=3600)
    await stores.bank.accounts.set_spend_limit("bob", "week", 7)
    await stores.bank.accounts.set_spend_limit("bob", "week", None)
    with pytest.raises(SpendingLimit):
        await gift(stores, 2, "g1")
    assert (await stores.bank.accounts.spending("bob", now_ms()))["week"]["pending"]["self_limit"] is None


async def test_lowering_again_cancels_a_waiting_raise(redis):
    stores = await open_stores(redis, spend_limit_raise_delay_s=3600)
    accounts = stores.bank.accounts
    for coins in (50, 500, 20):
        await accounts.set_spend_limit("bob", "day", coins)
    view = (await accounts.spending("bob", now_ms()))["day"]
    assert (view["self_limit"], view["pending"]) == (20, None)


async def test_set_spend_limit_script_refuses_bad_input(redis):
    stores = make_stores(redis)
    for period, limit, delay in [("m", 5, 0), ("d", 0, 0), ("d", "x", 0), ("d", 5, -1)]:
        reply = await stores.bank.accounts._scripts.set_spend_limit(keys=[keys.limits("bob")],
                                                                    args=[period, limit, delay])
        assert reply == [b"err", b"invalid_field"]
    assert not await redis.exists(keys.limits("bob"))


async def test_reward_credits_coins_with_who_and_why(redis):
    stores = make_stores(redis)
    balance, replay = await stores.bank.accounts.grant(reward_grant(ADMIN, "bob", 50, "contest winner", "r1"))
    entry = (await stores.wallets.ledger("bob"))[0]
    assert (balance, replay) == (50, False)
    assert (entry["kind"], entry["delta"], entry["reason"], entry["admin"], entry["ref"]) == (
        "reward", 50, "contest winner", "root", "admin:r1")


async def test_grant_with_the_same_key_applies_once(redis):
    stores = make_stores(redis)
    await stores.bank.accounts.grant(reward_grant(ADMIN, "bob", 50, "contest", "r1"))
    balance, replay = await stores.bank.accounts.grant(reward_grant(ADMIN, "bob", 50, "contest", "r1"))
    assert (balance, replay) == (50, True)
    with pytest.raises(IdempotencyConflict):
        await stores.bank.accounts.grant(reward_grant(ADMIN, "bob", 60, "contest", "r1"))


async def test_negative_adjustment_cannot_go_below_zero(redis):
    stores = make_stores(redis)
    await stores.set_coins("bob", 10)
    with pytest.raises(InsufficientFunds):
        await stores.bank.accounts.grant(balance_adjustment(ADMIN, "bob", "coins", -11, "typo", "a1"))
    assert (await stores.wallets.balances("bob")).coins == 10


async def test_diamond_adjustment_moves_diamonds(redis):
    stores = make_stores(redis)
    balance, _ = await stores.bank.accounts.grant(balance_adjustment(ADMIN, "alice", "diamonds", 30, "lost gift", "a1"))
    assert balance == 30 == (await stores.wallets.balances("alice")).diamonds


async def test_an_adjustment_that_clears_the_debt_unlocks(redis):
    stores = make_stores(redis)
    await stores.lock_by_chargeback()
    await stores.bank.accounts.grant(balance_adjustment(ADMIN, "bob", "coins", 700, "written off", "w1"))
    assert (await stores.wallets.balances("bob")).locked is None
    assert [e["kind"] for e in await stores.wallets.ledger("bob", limit=2)] == ["unlock", "adjustment"]
