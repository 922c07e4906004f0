"""Live rooms on a real Valkey: open/close is idempotent, published, and resets the live."""

import msgpack
import pytest

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.errors import InvalidField
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


async def test_goal_is_stored_published_and_kept_across_lives(stores, redis):
    opened = await stores.lives.set_state("alice", "open")
    goal = await stores.lives.set_goal("alice", 5000)
    assert (goal.changed, goal.diamonds, goal.seq) == (True, 5000, 2)
    event = msgpack.unpackb((await redis.xrange(keys.live_history("alice")))[-1][1][b"e"])
    assert {k: event[k] for k in ("t", "seq", "epoch", "live_id", "diamonds")} == {
        "t": "goal", "seq": 2, "epoch": opened.epoch, "live_id": "1", "diamonds": 5000}
    await stores.lives.set_state("alice", "closed")
    await stores.lives.set_state("alice", "open")
    assert (await stores.lives.snapshot("alice"))["goal"] == 5000


async def test_setting_the_same_goal_changes_nothing(stores):
    first = await stores.lives.set_goal("alice", 300)
    again = await stores.lives.set_goal("alice", 300)
    assert not again.changed and again.seq == first.seq == 1


async def test_goal_before_the_first_live_names_the_rooms_history(stores):
    goal = await stores.lives.set_goal("alice", 300)
    opened = await stores.lives.set_state("alice", "open")
    assert opened.seq == goal.seq + 1 and opened.epoch != ""


@pytest.mark.parametrize("diamonds", [-1, 10**12 + 1, 2.0, True, "5"])
async def test_goal_out_of_range_is_refused_and_changes_nothing(stores, diamonds):
    with pytest.raises(InvalidField):
        await stores.lives.set_goal("alice", diamonds)
    assert (await stores.lives.snapshot("alice"))["seq"] == 0
