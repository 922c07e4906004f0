"""Room-wide viewer counts (server/viewers.py, lua/report_viewers.lua): several servers on one
real Valkey, real WebSocket clients."""

from __future__ import annotations

import itertools

from server import keys
from server.scripts import Scripts
from tests.conftest import wait_until

FAST = {"viewers_interval_s": 0.05}



async def reported_total_is(redis, expected: int) -> bool:
    """True if the room's hash holds `expected` viewers, as the servers last reported them."""
    values = await redis.hvals(keys.room_viewers("alice"))
    return sum(int(value.split(b":")[0]) for value in values) == expected


async def next_count(client, count: int) -> list[int]:
    """Every `viewers` count the client gets, up to the first that equals `count`."""
    counts = [(await client.next_event("viewers"))["count"]]
    while counts[-1] != count:
        counts.append((await client.next_event("viewers"))["count"])
    return counts


async def test_members_get_the_count_of_every_server_each_time_it_changes(open_room, start_server, open_client):
    a, b = await start_server(**FAST), await start_server(**FAST)
    watcher = await open_client(a, "carol")
    await open_client(a, "dave")
    leaving = await open_client(b, "erin")
    counts = await next_count(watcher, 3)
    await leaving.close()
    counts += await next_count(watcher, 2)

    assert counts[-2:] == [3, 2]
    assert all(before != after for before, after in itertools.pairwise(counts))  # only changes are sent


async def test_snapshot_and_room_route_count_viewers_on_every_server(open_room, start_server, open_client, redis):
    a, b = await start_server(**FAST), await start_server(**FAST)
    await open_client(a, "carol")
    await open_client(a, "dave")
    await wait_until(lambda: reported_total_is(redis, 2))

    async with b.http() as http:
        assert (await http.get("/v1/rooms/alice")).json()["viewers"] == 2
    joiner = await open_client(b, "erin", join=None)
    assert (await joiner.request(t="join", room="alice"))["snapshot"]["viewers"] == 3


async def test_the_viewers_of_a_server_that_stopped_reporting_expire(open_room, start_server, open_client, redis):
    scripts = Scripts.register(redis)
    await scripts.report_viewers(keys=[keys.room_viewers("alice")], args=["gone", 5, 300])  # then it died
    server = await start_server(**FAST)
    viewer = await open_client(server, "carol", join=None)
    assert (await viewer.request(t="join", room="alice"))["snapshot"]["viewers"] == 6
    assert (await next_count(viewer, 1))[-1] == 1
    assert await redis.hexists(keys.room_viewers("alice"), "gone") == 0


async def test_a_server_withdraws_its_viewers_when_it_stops(open_room, start_server, open_client, redis):
    server = await start_server(**FAST)
    await open_client(server, "carol")
    await wait_until(lambda: reported_total_is(redis, 1))
    await server.stop()
    assert await redis.exists(keys.room_viewers("alice")) == 0


async def test_a_read_only_report_changes_nothing(redis):
    scripts = Scripts.register(redis)
    viewers = keys.room_viewers("alice")
    assert await scripts.report_viewers(keys=[viewers], args=["p1", 4, 60_000]) == 4
    before = await redis.hgetall(viewers)
    assert await scripts.report_viewers(keys=[viewers], args=["p2", -1, 60_000]) == 4
    assert await scripts.report_viewers(keys=[viewers], args=["p1", -1, 60_000]) == 4
    assert await redis.hgetall(viewers) == before

