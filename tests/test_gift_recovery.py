"""GiftRecovery (server/gift_recovery.py) on a real Valkey: completes what a crash left in flight,
exactly once, and only once it is due."""

from __future__ import annotations

import asyncio

import pytest

from server import keys
from server.audit import audit
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from server.gift_recovery import GiftRecovery
from tests.conftest import wait_until
from tests.factories import make_split_gifts, make_stores

CREATOR = "alice"


class Crash(Exception):
    pass


def crash() -> None:
    raise Crash


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis)
    await stores.lives.set_state(CREATOR, "open")
    await stores.set_coins("bob", 100)
    return stores


async def crash_after_debit(stores, key: str = "k1") -> None:
    """bob sends alice a panda (5 coins); the sending process dies right after the debit."""
    charge = price_gift(stores.catalog, Principal("bob", "viewer"), SendGift(1, CREATOR, "panda", 1, key),
                        rate_bp=10_000)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge)


async def index_size(redis) -> int:
    return sum([await redis.zcard(keys.gifts_in_flight(p)) for p in range(keys.GIFT_PARTITIONS)])


async def make_due(redis) -> None:
    """Let time pass for the in-flight index: every attempt's due time (start + recovery_s, 5 s
    here) becomes the epoch. The debit deadline it implies has passed by then too."""
    for partition in range(keys.GIFT_PARTITIONS):
        index = keys.gifts_in_flight(partition)
        for attempt in await redis.zrange(index, 0, -1):
            await redis.zadd(index, {attempt: 0}, xx=True)


async def test_a_pass_completes_a_due_gift_and_clears_the_index(stores, redis):
    await crash_after_debit(stores)
    await make_due(redis)
    assert await GiftRecovery(redis, make_split_gifts(stores), period_s=1).run_once() == 1
    assert (await stores.wallets.balances(CREATOR)).diamonds == 5
    assert (await redis.hlen(keys.outbox("bob")), await index_size(redis)) == (0, 0)
    assert (await audit(redis)).ok


async def test_the_sender_retrying_after_recovery_gets_the_same_receipt(stores, redis):
    await crash_after_debit(stores)
    await make_due(redis)
    await GiftRecovery(redis, make_split_gifts(stores), period_s=1).run_once()
    [received] = await stores.wallets.ledger(CREATOR)
    charge = price_gift(stores.catalog, Principal("bob", "viewer"), SendGift(2, CREATOR, "panda", 1, "k1"),
                        rate_bp=10_000)
    receipt = await make_split_gifts(stores).apply_gift(charge)
    assert receipt.replay and (receipt.balance, receipt.creator_diamonds) == (95, 5)
    assert receipt.ts == received["ts"]


async def test_two_processes_recovering_at_once_credit_once(stores, redis):
    for key in ("k1", "k2", "k3"):
        await crash_after_debit(stores, key)
    await make_due(redis)
    passes = [GiftRecovery(redis, make_split_gifts(stores), period_s=1).run_once() for _ in range(3)]
    assert sum(await asyncio.gather(*passes)) >= 3
    assert (await stores.wallets.balances(CREATOR)).diamonds == 15
    assert len(await stores.wallets.ledger(CREATOR)) == 3
    assert await index_size(redis) == 0 and (await audit(redis)).ok


async def test_a_gift_not_yet_due_is_left_alone(stores, redis):
    await crash_after_debit(stores)
    assert await GiftRecovery(redis, make_split_gifts(stores), period_s=1).run_once() == 0
    assert (await stores.wallets.balances(CREATOR)).diamonds == 0
    assert await redis.hexists(keys.outbox("bob"), "k1") and await index_size(redis) == 1


async def test_an_attempt_that_left_nothing_behind_is_dropped_from_the_index(stores, redis):
    await redis.zadd(keys.gifts_in_flight(keys.gift_partition("bob")), {"bob k9 00": 1})  # died before its debit
    assert await GiftRecovery(redis, make_split_gifts(stores), period_s=1).run_once() == 0
    assert await index_size(redis) == 0
    assert (await stores.wallets.balances("bob")).coins == 100


async def test_the_background_loop_completes_a_crashed_gift(stores, redis):
    await crash_after_debit(stores)
    await make_due(redis)

    async def settled() -> bool:
        return (await stores.wallets.balances(CREATOR)).diamonds == 5 and await index_size(redis) == 0

    recovery = GiftRecovery(redis, make_split_gifts(stores), period_s=0.05)
    await recovery.start()
    try:
        await wait_until(settled)
    finally:
        await recovery.stop()
    assert len(await stores.wallets.ledger(CREATOR)) == 1
