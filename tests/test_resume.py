"""No event lost or repeated across reconnects, over real WebSockets against a real server: the
session's join with `since` (resume from history, or reset to a snapshot), the hub's hold at
the seam between history and live events, and its gap recovery after a pub/sub reconnect."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis.asyncio as aioredis

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from tests.conftest import wait_until
from tests.factories import make_stores



async def gift_seqs(sender, count: int, acked: list[int] | None = None) -> list[int]:
    """Send `count` gifts one after another; the seqs of their receipts (also appended to `acked`)."""
    acked = [] if acked is None else acked
    for _ in range(count):
        acked.append((await sender.gift())["receipt"]["seq"])
    return acked


async def storm(sender, count: int) -> asyncio.Task[list[int]]:
    """Gifts sent in the background; returns once the first few went through."""
    acked: list[int] = []
    task = asyncio.create_task(gift_seqs(sender, count, acked))
    await wait_until(lambda: len(acked) >= 3 or task.done())
    return task


def seqs_of(events) -> list[int]:
    return [event["seq"] for event in events]


async def no_more_events(client) -> bool:
    """True if nothing but what the client already has is on its way (a pong is a barrier)."""
    await client.request(t="ping")
    return client.events.empty()


async def test_resume_replays_exactly_the_missed_gifts_while_gifts_keep_coming(open_room, live_server, open_client):
    sender = await open_client(live_server, "bob")
    viewer = await open_client(live_server, "carol")
    seen = await viewer.events_until((await gift_seqs(sender, 3))[-1])
    await viewer.close()
    await gift_seqs(sender, 10)  # missed while away

    gifts = await storm(sender, 40)
    again = await open_client(live_server, "carol", join=None)
    since = {"epoch": seen[-1]["epoch"], "seq": seen[-1]["seq"]}
    joined = await again.request(t="join", room="alice", since=since)
    last = (await gifts)[-1]

    events = await again.events_until(last)
    assert (joined["resumed"], joined["epoch"], joined["replayed"]) == (True, since["epoch"], joined["seq"] - since["seq"])
    assert seqs_of(events) == list(range(since["seq"] + 1, last + 1))
    assert again.frames.index(joined) == 0  # the missed events follow the reply
    assert await no_more_events(again)


async def test_resume_with_nothing_missed_replays_nothing(open_room, live_server, open_client):
    viewer = await open_client(live_server, "carol", join=None)
    snapshot = (await viewer.request(t="join", room="alice"))["snapshot"]
    again = await open_client(live_server, "carol", join=None)
    joined = await again.request(t="join", room="alice", since={"epoch": snapshot["epoch"], "seq": snapshot["seq"]})
    assert (joined["resumed"], joined["replayed"], joined["seq"]) == (True, 0, snapshot["seq"])
    assert await no_more_events(again)


@pytest.mark.parametrize("since", [
    pytest.param({"epoch": "1700000000000000", "seq": 2}, id="stale-epoch"),
    pytest.param({"epoch": "EPOCH", "seq": 10**9}, id="ahead-of-the-room"),
])
async def test_resume_from_an_unknown_position_resets_to_a_snapshot(open_room, live_server, open_client, since):
    sender = await open_client(live_server, "bob")
    await gift_seqs(sender, 3)
    epoch = (await open_room.lives.snapshot("alice"))["epoch"]
    viewer = await open_client(live_server, "carol", join=None)
    joined = await viewer.request(t="join", room="alice", since={**since, "epoch": since["epoch"].replace("EPOCH", epoch)})
    snapshot = joined["snapshot"]
    assert (joined["resumed"], joined["reset"], snapshot["seq"], snapshot["live_coins"]) == (False, True, 4, 3)
    assert snapshot["top"] == [["bob", 3]] and snapshot["viewers"] == 2
    [next_seq] = await gift_seqs(sender, 1)
    assert seqs_of(await viewer.events_until(next_seq)) == [snapshot["seq"] + 1]


async def test_resume_further_back_than_the_replay_limit_resets(open_room, start_server, open_client):
    server = await start_server(resume_max_events=5)
    sender = await open_client(server, "bob")
    since = await open_room.lives.snapshot("alice")
    await gift_seqs(sender, 6)
    viewer = await open_client(server, "carol", join=None)
    joined = await viewer.request(t="join", room="alice", since={"epoch": since["epoch"], "seq": since["seq"]})
    assert (joined["resumed"], joined["reset"], joined["snapshot"]["seq"]) == (False, True, since["seq"] + 6)


async def test_resume_past_trimmed_history_resets(open_room, live_server, open_client, redis):
    sender = await open_client(live_server, "bob")
    since = await open_room.lives.snapshot("alice")
    seqs = await gift_seqs(sender, 4)
    await redis.xtrim(keys.live_history("alice"), minid=f"{seqs[2]}-0", approximate=False)  # two gone
    viewer = await open_client(live_server, "carol", join=None)
    joined = await viewer.request(t="join", room="alice", since={"epoch": since["epoch"], "seq": since["seq"]})
    assert (joined["resumed"], joined["reset"]) == (False, True)
    still = await viewer.request(t="join", room="alice", since={"epoch": since["epoch"], "seq": seqs[1]})
    assert (still["resumed"], still["replayed"]) == (True, 2)


async def test_joining_during_a_gift_storm_gets_each_event_after_the_snapshot_once(open_room, live_server, open_client):
    sender = await open_client(live_server, "bob")
    viewers = [await open_client(live_server, f"viewer{i}", join=None) for i in range(5)]
    gifts = await storm(sender, 60)
    replies = await asyncio.gather(*(v.request(t="join", room="alice") for v in viewers))
    last = (await gifts)[-1]
    for viewer, joined in zip(viewers, replies, strict=True):
        first = joined["snapshot"]["seq"] + 1
        assert seqs_of(await viewer.events_until(last)) == list(range(first, last + 1))
        assert viewer.frames[0] is joined


async def test_a_reconnect_storm_of_one_room_shares_history_reads(open_room, live_server, open_client, redis):
    sender = await open_client(live_server, "bob")
    since = await open_room.lives.snapshot("alice")
    missed = await gift_seqs(sender, 5)
    viewers = await asyncio.gather(*(open_client(live_server, f"viewer{i}", join=None) for i in range(200)))

    await redis.config_resetstat()
    position = {"epoch": since["epoch"], "seq": since["seq"]}
    replies = await asyncio.gather(*(v.request(t="join", room="alice", since=position) for v in viewers))
    reads = (await redis.info("commandstats")).get("cmdstat_xrevrange", {}).get("calls", 0)

    assert {(r["resumed"], r["replayed"]) for r in replies} == {(True, 5)}
    for viewer in viewers:
        assert seqs_of(await viewer.events_until(missed[-1])) == missed
    assert 1 <= reads <= 10, f"{reads} history reads for 200 resumes"


def publish_while_the_loop_is_blocked(valkey_url: str, count: int, *, drop_history: bool = False) -> None:
    """Kill every pub/sub connection, then send `count` gifts (and maybe delete the room's
    history), all from another thread while this one blocks: the server, on this thread's event
    loop, cannot reconnect in between, so the events are surely published while it is away."""

    async def run() -> None:
        client = aioredis.Redis.from_url(valkey_url)
        stores = make_stores(client)
        assert await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        for n in range(count):
            charge = price_gift(stores.catalog, Principal("bob", "viewer"), SendGift(n, "alice", "rose", 1, f"gap-{n}"),
                                rate_bp=10_000)
            await stores.wallets.apply_gift(charge)
        if drop_history:
            await client.delete(keys.live_history("alice"))  # as if trimmed before the broker is back
        await client.aclose()

    worker = threading.Thread(target=asyncio.run, args=(run(),))
    worker.start()
    worker.join()


async def test_events_published_while_pubsub_was_down_are_recovered_in_order(open_room, live_server, open_client, valkey_url):
    sender = await open_client(live_server, "bob")
    viewer = await open_client(live_server, "carol")
    before = await gift_seqs(sender, 3)
    await viewer.events_until(before[-1])

    publish_while_the_loop_is_blocked(valkey_url, 5)
    after = await gift_seqs(sender, 3)  # sent once the broker is back (or while it recovers)

    events = await viewer.events_until(after[-1])
    assert seqs_of(events) == list(range(before[-1] + 1, after[-1] + 1))
    assert [e["from"] for e in events] == ["bob"] * 8
    assert await no_more_events(viewer)


async def test_a_gap_older_than_history_sends_members_a_reset_snapshot(open_room, live_server, open_client, valkey_url):
    viewer = await open_client(live_server, "carol")
    publish_while_the_loop_is_blocked(valkey_url, 3, drop_history=True)

    reset = await viewer.next_event("reset")
    assert (reset["room"], reset["snapshot"]["live_coins"], reset["snapshot"]["seq"]) == ("alice", 3, 4)
