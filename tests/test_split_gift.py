"""SplitGiftStore (server/split_gift.py): the cross-slot gift path, on a real 3-node Valkey cluster
and, for the step-by-step cases, on the single test Valkey (every key on one node, same scripts)."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from server import keys
from server.audit import audit
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from server.errors import IdempotencyConflict, InsufficientFunds, RoomClosed, Unavailable
from tests.cluster import ValkeyCluster
from tests.factories import Stores, make_split_gifts, make_stores

CREATOR = "alice"


class Crash(Exception):
    """Stands for the process dying right after the debit (the after_debit seam)."""


def crash() -> None:
    raise Crash


def charge(stores: Stores, sender: str, gift: str = "rose", count: int = 1, key: str = "k1"):
    return price_gift(stores.catalog, Principal(sender, "viewer"), SendGift(1, CREATOR, gift, count, key),
                      rate_bp=10_000)


def viewer_on_another_node(valkey_cluster: ValkeyCluster, creator: str) -> str:
    """A user id whose wallet lives on another node than `creator`'s."""
    creator_node = valkey_cluster.owner(keys.wallet(creator))
    return next(f"viewer{i}" for i in range(100) if valkey_cluster.owner(keys.wallet(f"viewer{i}")) != creator_node)


@pytest.fixture
async def on_cluster(cluster, valkey_cluster):
    stores = make_stores(cluster)
    await stores.lives.set_state(CREATOR, "open")
    return stores, viewer_on_another_node(valkey_cluster, CREATOR)


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis)
    await stores.lives.set_state(CREATOR, "open")
    return stores


async def in_flight(client) -> int:
    return sum([await client.zcard(keys.gifts_in_flight(p)) for p in range(keys.GIFT_PARTITIONS)])


# --- On the cluster -----------------------------------------------------------------------------


async def test_gift_between_slots_on_different_nodes_credits_exactly_once(on_cluster, cluster):
    stores, viewer = on_cluster
    await stores.set_coins(viewer, 100)
    receipt = await make_split_gifts(stores).apply_gift(charge(stores, viewer, "panda", 2))
    assert (receipt.coins_spent, receipt.balance, receipt.diamonds_credited, receipt.creator_diamonds) == (10, 90, 10, 10)
    assert not receipt.replay
    assert (await stores.wallets.balances(viewer)).coins == 90
    assert (await stores.wallets.balances(CREATOR)).diamonds == 10
    sent, received = (await stores.wallets.ledger(viewer))[0], (await stores.wallets.ledger(CREATOR))[0]
    assert (sent["kind"], received["kind"], sent["ref"]) == ("gift_sent", "gift_received", received["ref"])
    assert (await cluster.hlen(keys.outbox(viewer)), await in_flight(cluster)) == (0, 0)
    assert (await audit(cluster)).ok


async def test_retry_with_the_same_key_returns_the_first_receipt_on_the_cluster(on_cluster):
    stores, viewer = on_cluster
    await stores.set_coins(viewer, 100)
    gifts = make_split_gifts(stores)
    first = await gifts.apply_gift(charge(stores, viewer, "panda"))
    again = await gifts.apply_gift(charge(stores, viewer, "panda"))
    assert again.replay and (again.seq, again.balance) == (first.seq, first.balance)
    assert (await stores.wallets.balances(viewer)).coins == 95
    assert (await stores.wallets.balances(CREATOR)).diamonds == 5


async def test_concurrent_gifts_cannot_spend_the_same_coins_twice_on_the_cluster(on_cluster, cluster):
    stores, viewer = on_cluster
    await stores.set_coins(viewer, 5)
    gifts = make_split_gifts(stores)
    results = await asyncio.gather(
        *(gifts.apply_gift(charge(stores, viewer, "panda", key=f"k{i}")) for i in range(8)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, InsufficientFunds) for r in results if isinstance(r, Exception))
    assert (await stores.wallets.balances(viewer)).coins == 0
    assert (await stores.wallets.balances(CREATOR)).diamonds == 5
    assert (await audit(cluster)).ok


async def test_concurrent_requests_with_one_key_debit_once_on_the_cluster(on_cluster):
    stores, viewer = on_cluster
    await stores.set_coins(viewer, 100)
    gifts = make_split_gifts(stores)
    receipts = await asyncio.gather(*(gifts.apply_gift(charge(stores, viewer, "panda")) for _ in range(6)))
    assert len({r.seq for r in receipts}) == 1 and sum(not r.replay for r in receipts) == 1
    assert (await stores.wallets.balances(viewer)).coins == 95
    assert (await stores.wallets.balances(CREATOR)).diamonds == 5


async def test_a_closed_room_is_refused_before_any_debit_on_the_cluster(on_cluster, cluster):
    stores, viewer = on_cluster
    await stores.set_coins(viewer, 100)
    await stores.lives.set_state(CREATOR, "closed")
    with pytest.raises(RoomClosed):
        await make_split_gifts(stores).apply_gift(charge(stores, viewer))
    assert (await stores.wallets.balances(viewer)).coins == 100
    assert await in_flight(cluster) == 0


# --- Step by step, on one Valkey ----------------------------------------------------------------


async def test_a_crash_after_the_debit_leaves_the_gift_in_the_outbox_and_the_index(stores, redis):
    await stores.set_coins("bob", 100)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge(stores, "bob", "panda"))
    assert (await stores.wallets.balances("bob")).coins == 95
    assert (await stores.wallets.balances(CREATOR)).diamonds == 0
    assert await redis.hexists(keys.outbox("bob"), "k1") and await in_flight(redis) == 1


async def test_finishing_a_gift_twice_and_concurrently_credits_it_once(stores, redis):
    await stores.set_coins("bob", 100)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge(stores, "bob", "panda"))
    gifts = make_split_gifts(stores)
    finished = await asyncio.gather(*(gifts.finish("bob", "k1") for _ in range(4)))
    assert any(finished)
    assert not await gifts.finish("bob", "k1")  # nothing left in the outbox
    assert (await stores.wallets.balances(CREATOR)).diamonds == 5
    assert len(await stores.wallets.ledger(CREATOR)) == 1
    assert (await audit(redis)).ok


async def test_the_credit_script_run_twice_credits_once_and_answers_the_same(stores, redis):
    await stores.set_coins("bob", 100)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge(stores, "bob", "panda"))
    entry = await redis.hget(keys.outbox("bob"), "k1")
    ref = msgpack.unpackb(entry)["ref"]
    credit_keys = [keys.wallet(CREATOR), keys.ledger(CREATOR), keys.live(CREATOR), keys.live_top(CREATOR),
                   keys.live_history(CREATOR), keys.credited(CREATOR, ref), keys.live_streaks(CREATOR),
                   keys.live_streak_ends(CREATOR), keys.top_week(CREATOR, "2025-W01"), keys.top_all(CREATOR)]
    args = [entry, 1000, keys.room_channel(CREATOR), 48 * 3600, 3000, 3600]
    first = await stores.scripts.gift_credit(keys=credit_keys, args=args)
    second = await stores.scripts.gift_credit(keys=credit_keys, args=args)
    assert first[0] == b"credited" and second == [b"done", *first[1:]]
    assert (await stores.wallets.balances(CREATOR)).diamonds == 5


async def test_a_retry_of_a_gift_left_pending_finishes_it_once(stores):
    await stores.set_coins("bob", 100)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge(stores, "bob", "panda"))
    receipt = await make_split_gifts(stores).apply_gift(charge(stores, "bob", "panda"))
    assert receipt.replay and (receipt.balance, receipt.creator_diamonds) == (95, 5)
    assert (await stores.wallets.balances("bob")).coins == 95


async def test_a_retry_with_another_gift_under_a_pending_key_is_a_conflict(stores):
    await stores.set_coins("bob", 100)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge(stores, "bob", "panda"))
    with pytest.raises(IdempotencyConflict):
        await make_split_gifts(stores).apply_gift(charge(stores, "bob", "rose"))
    assert (await stores.wallets.balances(CREATOR)).diamonds == 0


async def test_a_gift_debited_as_the_room_closes_is_credited_to_the_live_it_was_sent_into(stores):
    await stores.set_coins("bob", 100)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge(stores, "bob", "panda"))
    await stores.lives.set_state(CREATOR, "closed")
    assert await make_split_gifts(stores).finish("bob", "k1")
    snapshot = await stores.lives.snapshot(CREATOR)
    assert (snapshot["creator_diamonds"], snapshot["live_coins"], snapshot["top"]) == (5, 5, [["bob", 5]])


async def test_a_gift_credited_after_a_new_live_began_does_not_count_in_the_new_live(stores):
    await stores.set_coins("bob", 100)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge(stores, "bob", "panda"))
    await stores.lives.set_state(CREATOR, "closed")
    await stores.lives.set_state(CREATOR, "open")
    assert await make_split_gifts(stores).finish("bob", "k1")
    snapshot = await stores.lives.snapshot(CREATOR)
    assert (snapshot["creator_diamonds"], snapshot["live_coins"], snapshot["top"]) == (5, 0, [])


async def test_a_debit_after_its_deadline_is_refused_and_changes_nothing(stores, redis):
    await stores.set_coins("bob", 100)
    before = await redis.dbsize()
    gift = charge(stores, "bob", "panda")
    reply = await stores.scripts.gift_debit(
        keys=[keys.wallet("bob"), keys.ledger("bob"), keys.idempotency("bob", "k1"), keys.outbox("bob")],
        args=["bob", CREATOR, "panda", 1, gift.coins, gift.diamonds, 10_000, gift.fingerprint, 3600, "k1", "open",
              "1", 1])  # deadline: 1 ms after the epoch
    assert reply == [b"err", b"unavailable"]
    assert (await stores.wallets.balances("bob")).coins == 100 and await redis.dbsize() == before


async def test_a_gift_too_old_to_credit_safely_is_left_for_an_operator(stores, redis):
    await stores.set_coins("bob", 100)
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge(stores, "bob", "panda"))
    gift = msgpack.unpackb(await redis.hget(keys.outbox("bob"), "k1"))
    await redis.hset(keys.outbox("bob"), "k1", msgpack.packb({**gift, "ts": gift["ts"] - 48 * 3600 * 1000}))
    with pytest.raises(Unavailable):
        await make_split_gifts(stores).finish("bob", "k1")
    assert (await stores.wallets.balances(CREATOR)).diamonds == 0 and await redis.hexists(keys.outbox("bob"), "k1")
