"""Live rooms on a real Valkey: open/close is idempotent, published, and resets the live."""

import msgpack
import pytest

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from tests.factories import make_stores


@pytest.fixture
def stores(redis):
    return make_stores(redis)


async def test_open_starts_a_new_live_and_publishes_it(stores, redis):
    state = await stores.lives.set_state("alice", "open")
    assert (state.changed, state.status, state.live_id, state.seq) == (True, "open", "1", 1)
    event = msgpack.unpackb((await redis.xrange(keys.live_history("alice")))[-1][1][b"e"])
    assert (event["t"], event["state"], event["seq"], event["epoch"]) == ("live", "open", 1, state.epoch)


async def test_opening_an_open_room_changes_nothing(stores):
    first = await stores.lives.set_state("alice", "open")
    again = await stores.lives.set_state("alice", "open")
    assert not again.changed and (again.live_id, again.seq) == (first.live_id, first.seq)


async def test_reopening_starts_the_next_live_with_fresh_totals(stores):
    await stores.set_coins("bob", 10)
    await stores.lives.set_state("alice", "open")
    await stores.wallets.apply_gift(price_gift(stores.catalog, Principal("bob", "viewer"),
                                               SendGift(1, "alice", "rose", 2, "k"), rate_bp=10_000))
    await stores.lives.set_state("alice", "closed")
    state = await stores.lives.set_state("alice", "open")
    snapshot = await stores.lives.snapshot("alice")
    assert state.live_id == "2" and (snapshot["live_coins"], snapshot["top"]) == (0, [])
    assert snapshot["creator_diamonds"] == 2  # the creator keeps what earlier lives earned


async def test_seq_keeps_growing_across_lives_and_epoch_stays(stores):
    first = await stores.lives.set_state("alice", "open")
    await stores.lives.set_state("alice", "closed")
    second = await stores.lives.set_state("alice", "open")
    assert second.seq == 3 and second.epoch == first.epoch


async def test_snapshot_of_an_unknown_room_is_closed_and_empty(stores):
    snapshot = await stores.lives.snapshot("nobody")
    assert (snapshot["status"], snapshot["seq"], snapshot["top"]) == ("closed", 0, [])
