"""The admins' index of locked accounts on a real Valkey: written from the scripts' replies."""

import pytest

from server import keys
from server.auth import Principal
from server.economy import balance_adjustment
from server.locked_accounts import list_locked
from tests.conftest import wait_until
from tests.factories import make_stores, now_ms


@pytest.fixture
def stores(redis):
    return make_stores(redis)


async def test_a_reversal_that_locks_lists_the_account_with_why(stores):
    order = await stores.lock_by_chargeback("bob")
    [row] = await list_locked(stores.redis, limit=10)
    assert (row["user_id"], row["coins"], row["locked"]) == ("bob", -700, f"chargeback:{order['id']}")
    assert row["since"] > 0


async def test_a_reversal_that_does_not_lock_lists_nothing(stores):
    order = await stores.paid_order("bob")
    await stores.orders.reverse(order["id"], "refund", "re_1", order["payment_id"], order["price"], "USD")
    assert await list_locked(stores.redis, limit=10) == []


async def test_a_recharge_that_settles_the_debt_unlists_the_account(stores):
    await stores.lock_by_chargeback("bob")
    await stores.set_coins("bob", 699)
    assert [row["user_id"] for row in await list_locked(stores.redis, limit=10)] == ["bob"]
    await stores.set_coins("bob", 1)
    assert await list_locked(stores.redis, limit=10) == []


async def test_an_admin_write_off_unlists_the_account(stores):
    await stores.lock_by_chargeback("bob")
    await stores.bank.accounts.grant(balance_adjustment(Principal("root", "admin"), "bob", "coins", 700,
                                                        "write-off", "w1"))
    assert await list_locked(stores.redis, limit=10) == []
    assert (await stores.wallets.balances("bob")).locked is None


async def test_a_redelivered_reversal_repairs_a_lost_index_write(stores):
    """A process that died between the script and the index write: the provider's retry repairs it."""
    order = await stores.lock_by_chargeback("bob")
    await stores.redis.zrem(keys.LOCKED_ACCOUNTS, "bob")
    replay = await stores.orders.reverse(order["id"], "chargeback", "dp_" + order["id"], order["payment_id"],
                                         order["price"], "USD")
    assert replay.replay and [r["user_id"] for r in await list_locked(stores.redis, limit=10)] == ["bob"]


async def test_a_stale_entry_is_not_listed(stores):
    await stores.redis.zadd(keys.LOCKED_ACCOUNTS, {"carol": 1})  # an unlock whose index write was lost
    assert await list_locked(stores.redis, limit=10) == []


async def test_the_longest_locked_come_first_up_to_the_limit(stores):
    for user in ("erin", "dave", "bob"):  # not in name order: the index orders by time
        await stores.lock_by_chargeback(user)
        since = await stores.redis.zscore(keys.LOCKED_ACCOUNTS, user)
        await wait_until(lambda since=since: now_ms() > since)  # the next lock is a later millisecond
    assert [r["user_id"] for r in await list_locked(stores.redis, limit=2)] == ["erin", "dave"]
