"""The gift script on a real Valkey: atomic debit/credit, idempotency, errors, concurrency."""

import asyncio
import dataclasses

import msgpack
import pytest
import redis.asyncio as aioredis

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from server.errors import IdempotencyConflict, InsufficientFunds, InvalidCount, RoomClosed
from tests.factories import make_stores

ALICE = "alice"  # the creator


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis)
    await stores.lives.set_state(ALICE, "open")
    return stores


def charge(stores, sender="bob", gift="rose", count=1, key="k1", room=ALICE):
    return price_gift(stores.catalog, Principal(sender, "viewer"), SendGift(1, room, gift, count, key), rate_bp=10_000)


async def test_gift_debits_sender_and_credits_creator(stores):
    await stores.set_coins("bob", 100)
    receipt = await stores.wallets.apply_gift(charge(stores, gift="panda", count=2))
    assert (receipt.coins_spent, receipt.balance, receipt.diamonds_credited, receipt.creator_diamonds) == (10, 90, 10, 10)
    assert receipt.rate_bp == 10_000 and not receipt.replay
    assert (await stores.wallets.balances("bob")).coins == 90
    assert (await stores.wallets.balances(ALICE)).diamonds == 10


async def test_gift_writes_a_ledger_entry_on_both_sides(stores):
    await stores.set_coins("bob", 100)
    await stores.wallets.apply_gift(charge(stores, gift="panda"))
    sent = (await stores.wallets.ledger("bob"))[0]
    received = (await stores.wallets.ledger(ALICE))[0]
    assert (sent["kind"], sent["delta"], sent["balance"], sent["peer"]) == ("gift_sent", -5, 95, ALICE)
    assert (received["kind"], received["delta"], received["rate_bp"]) == ("gift_received", 5, 10_000)
    assert sent["ref"] == received["ref"]


async def test_gift_updates_live_totals_and_top_gifters(stores):
    await stores.set_coins("bob", 100)
    await stores.set_coins("carol", 100)
    await stores.wallets.apply_gift(charge(stores, "bob", "panda"))
    await stores.wallets.apply_gift(charge(stores, "carol", "love_bang"))
    snapshot = await stores.lives.snapshot(ALICE)
    assert (snapshot["live_coins"], snapshot["live_gifts"]) == (30, 2)
    assert snapshot["top"] == [["carol", 25], ["bob", 5]]


async def test_gift_is_published_and_kept_in_history(stores, redis):
    await stores.set_coins("bob", 10)
    pubsub = redis.pubsub()
    await pubsub.ssubscribe(keys.room_channel(ALICE))
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    receipt = await stores.wallets.apply_gift(charge(stores, count=3))
    message = await pubsub.get_message(timeout=2)
    event = msgpack.unpackb(message["data"])
    assert (event["t"], event["seq"], event["from"], event["count"], event["creator_diamonds"]) == (
        "gift", receipt.seq, "bob", 3, 3)
    history = await redis.xrange(keys.live_history(ALICE))
    assert msgpack.unpackb(history[-1][1][b"e"]) == event
    assert history[-1][0] == f"{receipt.seq}-0".encode()
    await pubsub.aclose()


async def test_insufficient_funds_changes_nothing(stores, redis):
    await stores.set_coins("bob", 4)
    before = await redis.dbsize()
    with pytest.raises(InsufficientFunds):
        await stores.wallets.apply_gift(charge(stores, gift="panda"))
    assert (await stores.wallets.balances("bob")).coins == 4
    assert await redis.dbsize() == before
    assert await redis.xlen(keys.ledger("bob")) == 1  # only the seeding recharge


async def test_closed_room_changes_nothing(stores):
    await stores.set_coins("bob", 10)
    await stores.lives.set_state(ALICE, "closed")
    with pytest.raises(RoomClosed):
        await stores.wallets.apply_gift(charge(stores))
    assert (await stores.wallets.balances("bob")).coins == 10


async def test_same_key_again_returns_first_receipt_and_charges_nothing(stores):
    await stores.set_coins("bob", 10)
    first = await stores.wallets.apply_gift(charge(stores, count=2))
    again = await stores.wallets.apply_gift(charge(stores, count=2))
    assert again.replay and dataclass_without_replay(again) == dataclass_without_replay(first)
    assert (await stores.wallets.balances("bob")).coins == 8
    assert (await stores.wallets.balances(ALICE)).diamonds == 2


async def test_a_receipt_on_the_wire_carries_every_field_of_the_receipt(stores):
    await stores.set_coins("bob", 10)
    receipt = await stores.wallets.apply_gift(charge(stores, count=2))
    assert receipt.to_wire() == dataclasses.asdict(receipt)


def dataclass_without_replay(receipt):
    wire = receipt.to_wire()
    wire.pop("replay")
    return wire


async def test_same_key_with_other_parameters_is_a_conflict(stores):
    await stores.set_coins("bob", 10)
    await stores.wallets.apply_gift(charge(stores, count=2))
    with pytest.raises(IdempotencyConflict):
        await stores.wallets.apply_gift(charge(stores, count=3))
    assert (await stores.wallets.balances("bob")).coins == 8


async def test_keys_are_scoped_to_the_sender(stores):
    await stores.set_coins("bob", 10)
    await stores.set_coins("carol", 10)
    await stores.wallets.apply_gift(charge(stores, "bob", key="same"))
    receipt = await stores.wallets.apply_gift(charge(stores, "carol", key="same"))
    assert not receipt.replay and (await stores.wallets.balances("carol")).coins == 9


async def test_idempotency_record_is_kept_at_least_24_hours(stores, redis):
    await stores.set_coins("bob", 10)
    await stores.wallets.apply_gift(charge(stores, key="ttl"))
    assert await redis.ttl(keys.idempotency("bob", "ttl")) >= 24 * 3600


async def test_script_rejects_bad_amounts_before_any_write(stores, redis):
    await stores.set_coins("bob", 10)
    for coins, diamonds in [(-5, 0), (0, 0), (1.5, 1), (2**53, 1), ("x", 1), (1, -1)]:
        reply = await stores.wallets._scripts.send_gift(
            keys=[keys.wallet("bob"), keys.ledger("bob"), keys.idempotency("bob", "raw"),
                  keys.wallet(ALICE), keys.ledger(ALICE), keys.live(ALICE), keys.live_top(ALICE),
                  keys.live_history(ALICE)],
            args=["bob", ALICE, "rose", 1, coins, diamonds, 10_000, "fp", 60, 100, "ch", "raw"])
        assert reply == [b"err", b"invalid_count"]
    assert (await stores.wallets.balances("bob")).coins == 10
    assert not await redis.exists(keys.idempotency("bob", "raw"))


async def test_script_reloads_after_the_server_forgets_it(stores, redis):
    await stores.set_coins("bob", 10)
    await redis.script_flush()
    receipt = await stores.wallets.apply_gift(charge(stores))
    assert receipt.balance == 9


async def test_concurrent_gifts_spend_exactly_the_balance(stores, valkey_url):
    """50 gifts race on 5 connections against a balance covering 20: exactly 20 succeed."""
    await stores.set_coins("bob", 20)
    clients = [aioredis.Redis.from_url(valkey_url) for _ in range(5)]
    try:
        per_client = [make_stores(client) for client in clients]

        async def send(i):
            store = per_client[i % 5]
            try:
                await store.wallets.apply_gift(charge(store, key=f"race-{i}"))
                return True
            except InsufficientFunds:
                return False

        results = await asyncio.gather(*(send(i) for i in range(50)))
    finally:
        for client in clients:
            await client.aclose()
    assert results.count(True) == 20
    assert (await stores.wallets.balances("bob")).coins == 0
    assert (await stores.wallets.balances(ALICE)).diamonds == 20
    assert await stores.ledger_sum("bob", "coins") == 0
    assert await stores.ledger_sum(ALICE, "diamonds") == 20


async def test_count_overflowing_the_ceiling_never_reaches_the_script(stores):
    with pytest.raises(InvalidCount):
        charge(stores, gift="universe", count=10**8)
