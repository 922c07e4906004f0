"""The integrators' event WebSocket (server/event_stream.py) against a real server, real Valkey
and real WebSocket clients on loopback: the webhooks' events, resume by position, gaps, refusals."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server import event_stream, keys
from server.connection import CLOSE_TOO_SLOW
from server.ws_handshake import EVENTS_PATH
from tests.conftest import wait_until
from tests.factories import make_stores
from tests.test_hooks import gift, receiver, register  # noqa: F401  (receiver: the webhook endpoint fixture)
from tests.test_cluster_server import client, on_cluster  # noqa: F401  (fixtures: a WebSocket viewer, stores on the cluster)
from tests.test_resume import publish_while_the_loop_is_blocked
from tests.ws_client import JSON, Client

Stream = Callable[..., Awaitable[Client]]


@pytest.fixture
async def live_server(start_server):
    """Webhooks polled every 20 ms, to compare their deliveries with the stream."""
    return await start_server(hook_poll_ms=20)


@pytest.fixture
async def stores(redis):
    """alice has never been live; bob holds 1,000 coins (and may gift as fast as he likes)."""
    stores = make_stores(redis, gift_rate_per_s=0)
    await stores.set_coins("bob", 1000)
    return stores


def stream_url(server: Any, **query: Any) -> str:
    return server.ws_url.removesuffix("/ws") + EVENTS_PATH + ("?" + urlencode(query) if query else "")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def open_stream(live_server) -> AsyncIterator[Stream]:
    """Factory: an event stream of `live_server` (JSON), authenticated with `token` (default:
    alice's creator token), query parameters as keyword arguments; closed at teardown."""
    opened: list[Client] = []

    async def open_stream(token: str | None = None, **query: Any) -> Client:
        token = token or live_server.token("alice", "creator")
        ws = await connect(stream_url(live_server, **query), subprotocols=[JSON], additional_headers=bearer(token))
        opened.append(Client(ws, JSON))
        return opened[-1]

    yield open_stream
    for stream in opened:
        await stream.close()


async def ready(stream: Client) -> dict[str, Any]:
    return await stream.next_event("ready")


async def events_through(stream: Client, seq: int) -> list[dict[str, Any]]:
    """Everything streamed after `ready`, up to the first room event (or gap) reaching `seq`."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not got or got[-1].get("seq", got[-1].get("to_seq", 0)) < seq:
            event = await stream.events.get()
            if event["t"] != "ready":
                got.append(event)
    return got


async def test_the_stream_gets_the_same_events_as_a_webhook(live_server, stores, receiver, open_stream):  # noqa: F811
    endpoint = await receiver()
    await register(live_server, endpoint.url)
    stream = await open_stream()
    assert (await ready(stream))["head"] == 0  # a room never opened yet: its first live start comes
    await stores.lives.set_state("alice", "open")
    await stores.lives.set_goal("alice", 3)
    await gift(stores, 2)
    await gift(stores, 2)  # 4 diamonds: reaches the goal of 3
    await stores.lives.set_state("alice", "closed")
    last = (await stores.lives.set_state("alice", "open")).seq
    streamed = await events_through(stream, last)
    await wait_until(lambda: [e["seq"] for e in endpoint.accepted_events()][-1:] == [last])
    # The two roses are one combo streak, ended when the live closes.
    assert [e["t"] for e in streamed] == ["live", "goal", "gift", "gift", "goal_reached", "live", "streak_end", "live"]
    assert streamed == endpoint.accepted_events()


async def test_a_resume_gets_the_missed_events_once_and_in_order_then_live_ones(live_server, stores, open_stream):
    await stores.lives.set_state("alice", "open")
    await stores.lives.set_goal("alice", 5)
    first = await open_stream(live_server.token("alice", "overlay"))
    await ready(first)
    processed = (await events_through(first, await gift(stores, 2)))[-1]["seq"]
    await first.close()
    missed = [await gift(stores, 2), await gift(stores, 2)]  # 6 diamonds: the goal is reached meanwhile
    second = await open_stream(live_server.token("alice", "overlay"), since=processed)
    assert (await ready(second))["since"] == processed
    after = await gift(stores, 1)
    streamed = await events_through(second, after)
    assert [(e["t"], e["seq"]) for e in streamed] == [
        ("gift", missed[0]), ("gift", missed[1]), ("goal_reached", missed[1]), ("gift", after)]


async def test_events_sent_while_a_stream_starts_arrive_exactly_once(live_server, stores, open_stream):
    await stores.lives.set_state("alice", "open")
    since = await gift(stores)
    seqs: list[int] = []
    stop = asyncio.Event()

    async def gifts() -> None:  # one after another, before, during and after the stream's start
        while not stop.is_set():
            seqs.append(await gift(stores))

    sending = asyncio.create_task(gifts())
    await wait_until(lambda: len(seqs) >= 5)
    stream = await open_stream(since=since)
    head = (await ready(stream))["head"]
    await wait_until(lambda: seqs[-1] > head + 20)
    stop.set()
    await sending
    streamed = await events_through(stream, seqs[-1])
    assert [e["seq"] for e in streamed] == list(range(since + 1, seqs[-1] + 1))


async def test_a_catch_up_longer_than_a_page_arrives_whole(live_server, stores, open_stream, monkeypatch):
    monkeypatch.setattr(event_stream, "PAGE", 3)
    opened = (await stores.lives.set_state("alice", "open")).seq
    seqs = [await gift(stores) for _ in range(10)]
    streamed = await events_through(await open_stream(since=0), seqs[-1])
    assert [e["seq"] for e in streamed] == [opened, *seqs]


async def test_events_trimmed_from_the_history_are_reported_as_a_gap(live_server, stores, open_stream, redis):
    await stores.lives.set_state("alice", "open")
    since = await gift(stores)
    seqs = [await gift(stores) for _ in range(4)]
    # GIFTCAST_ROOM_HISTORY_LEN trims approximately (whole stream nodes of 100): trim exactly here.
    await redis.xtrim(keys.live_history("alice"), minid=f"{seqs[2]}-0", approximate=False)
    streamed = await events_through(await open_stream(since=since), seqs[-1])
    assert streamed[0] == {"t": "gap", "room": "alice", "from_seq": seqs[0], "to_seq": seqs[1]}
    assert [e["seq"] for e in streamed[1:]] == seqs[2:]


@pytest.mark.parametrize("user,role,query,status,code", [
    ("alice", "viewer", {}, 403, "forbidden"),
    ("alice", "admin", {}, 403, "forbidden"),
    ("alice", "creator", {"room": "carol"}, 403, "forbidden"),
    ("alice", "overlay", {"room": "carol"}, 403, "forbidden"),
    ("alice", "creator", {"room": "no such room!"}, 400, "invalid_field"),
    ("alice", "creator", {"since": "-1"}, 400, "invalid_field"),
    ("alice", "creator", {"since": "12abc"}, 400, "invalid_field"),
    ("alice", "creator", {"since": "9" * 40}, 400, "invalid_field"),
])
async def test_handshakes_the_stream_may_not_serve_are_refused(live_server, open_stream, user, role, query, status,
                                                               code):
    with pytest.raises(InvalidStatus) as refused:
        await open_stream(live_server.token(user, role), **query)
    response = refused.value.response
    assert (response.status_code, json.loads(response.body)["error"]["code"]) == (status, code)


async def test_a_position_ahead_of_the_room_is_refused_with_1008(live_server, stores, open_stream):
    head = (await stores.lives.set_state("alice", "open")).seq
    stream = await open_stream(since=head + 1)
    error = await stream.next_event("error")
    await stream.close()
    assert (error["code"], stream.ws.close_code) == ("invalid_field", 1008)


async def test_the_stream_cannot_send_gifts(live_server, stores, open_stream, redis):
    await stores.lives.set_state("carol", "open")
    stream = await open_stream(live_server.token("bob", "creator"), room="bob")
    await ready(stream)
    await stream.ws.send(json.dumps({"t": "gift", "room": "carol", "gift_id": "rose", "count": 1, "key": "k1"}))
    error = await stream.next_event("error")
    assert error["code"] == "forbidden"
    assert int(await redis.hget(keys.wallet("bob"), "coins")) == 1000


async def test_a_stream_that_does_not_read_is_cut_with_4008_and_gifting_goes_on(start_server, stores, redis):
    server = await start_server(outbox_limit_bytes=16 * 1024)
    await stores.lives.set_state("alice", "open")
    # The stalled integrator: a tiny receive buffer, and a client that stops reading after one message.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.settings.port))
    stalled = await connect(stream_url(server), sock=sock, max_queue=1,
                            additional_headers=bearer(server.token("alice", "creator")))
    port = sock.getsockname()[1]
    (conn,) = [t.connection for t in server.server.server_state.connections
               if getattr(t, "connection", None) and t.connection.remote_address[1] == port]
    # The kernel would otherwise buffer megabytes on loopback before the server's outbox grows.
    conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    async with asyncio.timeout(60):
        while conn.is_open:
            await gift(stores)
    assert conn.close_code == CLOSE_TOO_SLOW
    await gift(stores)  # the room goes on
    stalled.transport.abort()


async def test_events_the_server_lost_beyond_its_history_are_reported_as_a_gap(live_server, stores, open_stream,
                                                                               redis, valkey_url):
    last = (await stores.lives.set_state("alice", "open")).seq
    stream = await open_stream()
    await ready(stream)

    async def subscribed() -> bool:
        return (await redis.execute_command("PUBSUB", "SHARDNUMSUB", keys.room_channel("alice")))[1] == 1

    await wait_until(subscribed)
    publish_while_the_loop_is_blocked(valkey_url, 3, drop_history=True)  # pub/sub down, history gone
    after = await gift(stores)  # the hub sees the skip, finds the history cut short, resets
    gap = (await events_through(stream, last + 3))[0]
    again = await gift(stores)
    following = await events_through(stream, again)
    assert (gap["t"], gap["from_seq"], last + 3 <= gap["to_seq"] <= after) == ("gap", last + 1, True)
    assert [e["seq"] for e in following] == list(range(gap["to_seq"] + 1, again + 1))


async def test_a_refused_stream_handshake_holds_no_slot(start_server):
    server = await start_server(max_connections_per_address=1)
    headers = bearer(server.token("alice", "creator"))
    for _ in range(3):
        with pytest.raises(InvalidStatus) as refused:
            await connect(stream_url(server, room="carol"), additional_headers=headers)  # refused after taking the slot
        assert refused.value.response.status_code == 403
    ws = await connect(stream_url(server), additional_headers=headers)
    await ws.close()


async def test_a_stream_resumes_on_another_process_after_a_restart(start_server, stores):
    await stores.lives.set_state("alice", "open")
    first = await start_server()
    headers = bearer(first.token("alice", "overlay"))
    stream = Client(await connect(stream_url(first), subprotocols=[JSON], additional_headers=headers), JSON)
    await ready(stream)
    processed = (await events_through(stream, await gift(stores)))[-1]["seq"]
    await first.stop()
    await stream.close()
    missed = [await gift(stores) for _ in range(3)]  # while no server runs
    second = await start_server()
    resumed = Client(await connect(stream_url(second, since=processed), subprotocols=[JSON], additional_headers=headers),
                     JSON)
    streamed = await events_through(resumed, missed[-1])
    await resumed.close()
    assert (stream.ws.close_code, [e["seq"] for e in streamed]) == (1012, missed)


async def test_a_stream_on_redis_cluster_resumes_and_follows_live_gifts(
        start_server, valkey_cluster, on_cluster, client):  # noqa: F811  (fixtures imported above)
    _, viewer = on_cluster
    server = await start_server(redis_url=valkey_cluster.url)
    sender = await client(server, viewer)
    first = (await sender.gift())["receipt"]["seq"]
    stream = Client(await connect(stream_url(server, since=first - 1), subprotocols=[JSON],
                                  additional_headers=bearer(server.token("alice", "creator"))), JSON)
    await ready(stream)
    second = (await sender.gift())["receipt"]["seq"]
    streamed = await events_through(stream, second)
    await stream.close()
    assert [(e["t"], e["seq"], e["from"]) for e in streamed] == [("gift", first, viewer), ("gift", second, viewer)]
