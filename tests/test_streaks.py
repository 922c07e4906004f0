"""Combo streaks on a real Valkey: running counts in gift events, exactly-once ends, sweepers."""

import asyncio
import random

import msgpack
import pytest
import redis.asyncio as aioredis

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from server.live_store import LiveStore
from server.scripts import Scripts
from tests.factories import make_split_gifts, make_stores
from tests.test_split_gift import viewer_on_another_node

ALICE = "alice"  # the creator
LONG_WINDOW = {"streak_window_ms": 600_000}  # every test gift lands inside the window


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis, **LONG_WINDOW)
    await stores.lives.set_state(ALICE, "open")
    for user in ("bob", "carol", "dave"):
        await stores.set_coins(user, 1_000)
    return stores


async def send(stores, sender="bob", gift="rose", count=1, key=None):
    request = SendGift(1, ALICE, gift, count, key or f"k{random.getrandbits(64)}")
    return await stores.wallets.apply_gift(
        price_gift(stores.catalog, Principal(sender, "viewer"), request, rate_bp=10_000))


async def room_events(redis, kind):
    history = await redis.xrange(keys.live_history(ALICE))
    return [e for e in (msgpack.unpackb(fields[b"e"]) for _, fields in history) if e["t"] == kind]


async def expire_all_streaks(redis):
    """The window passes: every open streak's deadline moves into the past."""
    ids = await redis.zrange(keys.live_streak_ends(ALICE), 0, -1)
    await redis.zadd(keys.live_streak_ends(ALICE), {streak_id: 0 for streak_id in ids})


async def test_repeats_of_a_combo_gift_form_one_streak_with_a_running_count(stores, redis):
    first = await send(stores, count=1)
    await send(stores, count=2)
    await send(stores, count=3)
    streaks = [e["streak"] for e in await room_events(redis, "gift")]
    assert streaks == [{"id": first.seq, "count": 1, "phase": "start"},
                       {"id": first.seq, "count": 3, "phase": "update"},
                       {"id": first.seq, "count": 6, "phase": "update"}]


async def test_a_gift_that_is_not_combo_has_no_streak(stores, redis):
    await send(stores, gift="rainbow_puke")
    (event,) = await room_events(redis, "gift")
    assert "streak" not in event and not await redis.exists(keys.live_streak_ends(ALICE))


async def test_streaks_are_per_sender_and_per_gift(stores, redis):
    await send(stores, "bob", "rose")
    await send(stores, "carol", "rose")
    await send(stores, "bob", "panda")
    streaks = [e["streak"] for e in await room_events(redis, "gift")]
    assert [s["phase"] for s in streaks] == ["start"] * 3 and len({s["id"] for s in streaks}) == 3


async def test_an_idempotent_retry_does_not_bump_the_streak(stores, redis):
    await send(stores, count=2, key="same")
    replay = await send(stores, count=2, key="same")
    await send(stores, count=1)
    await expire_all_streaks(redis)
    await stores.lives.end_streaks(ALICE)
    (end,) = await room_events(redis, "streak_end")
    assert replay.replay and (end["count"], end["coins"]) == (3, 3)
    assert [e["streak"]["count"] for e in await room_events(redis, "gift")] == [2, 3]


async def test_the_end_carries_the_final_count_once_the_window_passed(stores, redis):
    first = await send(stores, count=1)
    await send(stores, count=2)
    last = await send(stores, count=4)
    await expire_all_streaks(redis)
    assert await stores.lives.end_streaks(ALICE) == (1, -1)
    (end,) = await room_events(redis, "streak_end")
    assert (end["streak_id"], end["from"], end["gift_id"], end["count"], end["coins"]) == (first.seq, "bob", "rose", 7, 7)
    assert (end["seq"], end["room"], end["live_id"]) == (last.seq + 1, ALICE, "1")
    assert not await redis.exists(keys.live_streaks(ALICE), keys.live_streak_ends(ALICE))


async def test_an_open_streak_is_not_ended_and_its_deadline_is_reported(stores, redis):
    await send(stores)
    ended, next_ms = await stores.lives.end_streaks(ALICE)
    assert ended == 0 and 590_000 < next_ms <= 600_001
    assert await room_events(redis, "streak_end") == []


async def test_a_gift_after_the_window_starts_a_new_streak(stores, redis):
    first = await send(stores, count=2)
    await expire_all_streaks(redis)
    second = await send(stores, count=1)
    assert (await room_events(redis, "gift"))[-1]["streak"] == {"id": second.seq, "count": 1, "phase": "start"}
    await stores.lives.end_streaks(ALICE)  # only the expired one ends
    assert [(e["streak_id"], e["count"]) for e in await room_events(redis, "streak_end")] == [(first.seq, 2)]
    await send(stores, count=5)  # still extends the open one
    assert (await room_events(redis, "gift"))[-1]["streak"] == {"id": second.seq, "count": 6, "phase": "update"}


async def test_closing_the_live_ends_every_open_streak_after_the_live_event(stores, redis):
    await send(stores, "bob", count=2)
    await send(stores, "carol", "panda", count=3)
    await stores.lives.set_state(ALICE, "closed")
    history = [msgpack.unpackb(f[b"e"]) for _, f in await redis.xrange(keys.live_history(ALICE))]
    assert [e["t"] for e in history[-3:]] == ["live", "streak_end", "streak_end"]
    assert sorted((e["from"], e["count"]) for e in history[-2:]) == [("bob", 2), ("carol", 3)]
    assert not await redis.exists(keys.live_streaks(ALICE), keys.live_streak_ends(ALICE))


async def test_concurrent_gifts_on_many_connections_sum_into_the_streak_total(stores, redis, valkey_url):
    clients = [aioredis.Redis.from_url(valkey_url) for _ in range(4)]
    try:
        per_client = [make_stores(client, **LONG_WINDOW) for client in clients]
        plan = [(sender, random.randint(1, 3)) for sender in ["bob"] * 40 + ["carol"] * 20]
        await asyncio.gather(*(send(per_client[i % 4], sender, count=count) for i, (sender, count) in enumerate(plan)))
    finally:
        for client in clients:
            await client.aclose()
    gifts = await room_events(redis, "gift")
    for sender in ("bob", "carol"):
        running = [e["streak"]["count"] for e in gifts if e["from"] == sender]
        counts = [e["count"] for e in gifts if e["from"] == sender]
        assert running == [sum(counts[: i + 1]) for i in range(len(counts))]  # in seq order, no gaps
    await stores.lives.set_state(ALICE, "closed")
    ends = {e["from"]: e["count"] for e in await room_events(redis, "streak_end")}
    assert ends == {s: sum(c for who, c in plan if who == s) for s in ("bob", "carol")}


async def test_racing_sweepers_end_each_streak_exactly_once(stores, redis, valkey_url):
    for sender in ("bob", "carol", "dave"):
        for gift in ("rose", "tiktok", "ice_cream", "panda", "love_bang", "sun_cream"):
            await send(stores, sender, gift, count=2)
    await expire_all_streaks(redis)
    clients = [aioredis.Redis.from_url(valkey_url) for _ in range(6)]
    try:
        sweepers = [make_stores(client).lives for client in clients]
        results = await asyncio.gather(*(sweepers[i % 6].end_streaks(ALICE) for i in range(24)))
    finally:
        for client in clients:
            await client.aclose()
    ends = await room_events(redis, "streak_end")
    assert sum(ended for ended, _ in results) == 18 == len(ends) == len({e["streak_id"] for e in ends})
    assert {e["count"] for e in ends} == {2}
    seqs = [e["seq"] for e in ends]
    assert seqs == sorted(set(seqs))


async def test_one_call_ends_at_most_a_bounded_batch_and_asks_to_be_called_again(stores, redis):
    for gift in ("rose", "tiktok", "ice_cream"):
        await send(stores, gift=gift)
    await expire_all_streaks(redis)
    lives = LiveStore(redis, Scripts.register(redis), history_len=100, streaks_per_call=2)
    assert await lives.end_streaks(ALICE) == (2, 0)
    assert await lives.end_streaks(ALICE) == (1, -1)


# --- The sweeper, in running servers: ends arrive by themselves, once -------------------------


async def room_events_until(client, kind):
    """The room events (frames with a seq) a client receives, up to and including the first `kind`."""
    seen = []
    async with asyncio.timeout(10):
        while not seen or seen[-1]["t"] != kind:
            frame = await client.events.get()
            if "seq" in frame:
                seen.append(frame)
    return seen


@pytest.fixture
async def short_room(redis):
    """Alice live, bob funded; gifts sent through these stores (not the servers) get a 100 ms window."""
    stores = make_stores(redis, streak_window_ms=100)
    await stores.lives.set_state(ALICE, "open")
    await stores.set_coins("bob", 1_000)
    return stores


async def assert_each_viewer_sees_one_end(sender, viewers, redis, *, gifts, count):
    for _ in range(gifts):
        assert (await sender.gift(count=count))["t"] == "ack"
    for viewer in viewers:
        assert (await room_events_until(viewer, "streak_end"))[-1]["count"] == gifts * count
    # Ordering makes "once" observable: a duplicate end would arrive before this later event.
    await sender.gift(gift_id="rainbow_puke")
    for viewer in viewers:
        assert [e["t"] for e in await room_events_until(viewer, "gift")] == ["gift"]
    assert len(await room_events(redis, "streak_end")) == 1


async def test_the_sweeper_ends_a_streak_when_its_window_passes(start_server, short_room, open_client):
    server = await start_server(streak_window_ms=400)
    sender, viewer = await open_client(server, "bob"), await open_client(server, "carol")
    for _ in range(3):
        assert (await sender.gift())["t"] == "ack"
    seen = await room_events_until(viewer, "streak_end")
    assert [e["streak"]["count"] for e in seen[:-1]] == [1, 2, 3]
    assert (seen[-1]["streak_id"], seen[-1]["count"]) == (seen[0]["streak"]["id"], 3)


async def test_two_servers_sweeping_one_room_publish_each_end_once(start_server, short_room, redis, open_client):
    servers = [await start_server(streak_window_ms=400, streak_sweep_ms=20) for _ in range(2)]
    sender = await open_client(servers[0], "bob")
    viewers = [await open_client(server, "carol") for server in servers]
    await assert_each_viewer_sees_one_end(sender, viewers, redis, gifts=5, count=2)


async def test_the_periodic_pass_ends_a_streak_this_process_never_saw_start(start_server, short_room, open_client):
    server = await start_server(streak_window_ms=100, streak_sweep_ms=20)
    first = await send(short_room, count=4)  # no process has a member in the room yet
    viewer = await open_client(server, "carol")
    end = (await room_events_until(viewer, "streak_end"))[-1]
    assert (end["streak_id"], end["count"]) == (first.seq, 4)


async def test_two_server_processes_each_end_a_streak_once(start_process, valkey_url, short_room, redis, open_client):
    first, second = [await start_process(REDIS_URL=valkey_url, GIFTCAST_STREAK_WINDOW_MS="400") for _ in range(2)]
    sender = await open_client(first, "bob")
    viewers = [await open_client(first, "carol"), await open_client(second, "dave")]
    await assert_each_viewer_sees_one_end(sender, viewers, redis, gifts=4, count=3)


# --- The Redis Cluster gift path (SplitGiftStore): the credit step keeps the streak ----------------


@pytest.fixture
async def cluster_room(cluster, valkey_cluster):
    """Stores on the 3-node cluster, alice live, and a funded viewer whose wallet is on another node."""
    stores = make_stores(cluster, **LONG_WINDOW)
    await stores.lives.set_state(ALICE, "open")
    viewer = viewer_on_another_node(valkey_cluster, ALICE)
    await stores.set_coins(viewer, 100)
    return stores, viewer


def split_charge(stores, sender, count=1, key="k1"):
    return price_gift(stores.catalog, Principal(sender, "viewer"), SendGift(1, ALICE, "rose", count, key), rate_bp=10_000)


async def test_a_streak_across_slots_on_a_cluster_counts_each_gift_and_ends_once(cluster_room, cluster):
    stores, viewer = cluster_room
    gifts = make_split_gifts(stores)
    for i, count in enumerate((1, 2, 3)):
        await gifts.apply_gift(split_charge(stores, viewer, count, key=f"k{i}"))
    await stores.lives.set_state(ALICE, "closed")
    events = [msgpack.unpackb(f[b"e"]) for _, f in await cluster.xrange(keys.live_history(ALICE))]
    assert [e["streak"]["count"] for e in events if e["t"] == "gift"] == [1, 3, 6]
    assert [(e["from"], e["count"]) for e in events if e["t"] == "streak_end"] == [(viewer, 6)]
    assert await stores.lives.leaderboard(ALICE, "all", 10) == [[viewer, 6]]


async def test_two_servers_on_a_cluster_publish_each_streak_end_once_and_rank_the_gifts(
        start_server, valkey_cluster, cluster_room, cluster, open_client):
    stores, viewer = cluster_room
    await stores.set_coins(viewer, 1_000)  # the closing non-combo gift costs 100
    servers = [await start_server(redis_url=valkey_cluster.url, streak_window_ms=400, streak_sweep_ms=20)
               for _ in range(2)]
    sender = await open_client(servers[0], viewer)
    viewers = [await open_client(server, "carol") for server in servers]
    await assert_each_viewer_sees_one_end(sender, viewers, cluster, gifts=4, count=3)
    async with servers[1].http() as http:
        boards = [(await http.get(f"/v1/rooms/{ALICE}/leaderboard", params={"period": period})).json()["top"]
                  for period in ("live", "week", "all")]
    assert boards == [[[viewer, 112]]] * 3  # 4 x 3 roses and one rainbow puke, each counted once


class Crash(Exception):
    """Stands for the process dying right after the debit."""


def crash():
    raise Crash


async def test_a_gift_finished_after_a_crash_extends_the_streak_once(stores, redis):
    gifts = make_split_gifts(stores)
    await gifts.apply_gift(split_charge(stores, "bob", 2, key="first"))
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(split_charge(stores, "bob", 3, key="crashed"))
    assert (await gifts.apply_gift(split_charge(stores, "bob", 3, key="crashed"))).replay  # the retry finishes it
    assert (await gifts.apply_gift(split_charge(stores, "bob", 3, key="crashed"))).replay  # and this one is done
    assert [e["streak"]["count"] for e in await room_events(redis, "gift")] == [2, 5]


async def test_a_gift_credited_after_the_live_closed_starts_no_streak(stores, redis):
    with pytest.raises(Crash):
        await make_split_gifts(stores, after_debit=crash).apply_gift(split_charge(stores, "bob", key="late"))
    await stores.lives.set_state(ALICE, "closed")
    assert await make_split_gifts(stores).finish("bob", "late")
    (event,) = await room_events(redis, "gift")
    assert "streak" not in event and not await redis.exists(keys.live_streak_ends(ALICE))
