"""RedisBroker (server/broker.py): hubs fed by pub/sub from a real Valkey, real WebSocket clients."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from server import keys
from server.broker import RedisBroker
from server.errors import Unavailable
from server.hub import RoomHub
from server.settings import Settings

ALICE = keys.room_channel("alice")
BOB = keys.room_channel("bob")


class RecordingHub(RoomHub):
    """A RoomHub that also reports `on_resubscribed` calls to the test."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.resubscribed: asyncio.Queue[frozenset[str]] = asyncio.Queue()

    def on_resubscribed(self, rooms: frozenset[str]) -> None:
        super().on_resubscribed(rooms)
        self.resubscribed.put_nowait(rooms)


@dataclasses.dataclass
class Node:
    """One giftcast process as far as fan-out goes: hub, broker, WebSocket server."""

    hub: RecordingHub
    broker: RedisBroker
    srv: Any

    async def join_client(self, room: str) -> ClientConnection:
        ws = await connect(self.srv.url())
        await ws.send(f"join:{room}")
        assert await recv_event(ws) == {"t": "joined", "room": room}
        return ws


async def recv_event(ws: ClientConnection) -> Any:
    async with asyncio.timeout(5):
        message = await ws.recv()
    return json.loads(message) if isinstance(message, str) else msgpack.unpackb(message)


async def numsub(redis: aioredis.Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_shardnumsub(channel)
    return count


@pytest.fixture
async def start_node(start_ws_server, valkey_url: str, redis: aioredis.Redis) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """Factory: a hub with its own RedisBroker on its own Redis client, behind a WS server."""
    made: list[tuple[Node, aioredis.Redis]] = []

    async def start(url: str = valkey_url, **broker_options: Any) -> Node:
        client = aioredis.Redis.from_url(url)
        hub = RecordingHub(Settings())
        broker = RedisBroker(client, **broker_options)
        hub.attach_broker(broker)
        await broker.start()
        node = Node(hub, broker, await start_ws_server(hub=hub))
        made.append((node, client))
        return node

    yield start
    for node, client in made:
        await node.broker.stop()
        await client.aclose()


async def test_publish_reaches_members_on_every_hub_in_the_room(start_node, redis: aioredis.Redis) -> None:
    a, b = await start_node(), await start_node()
    ws_a, ws_b = await a.join_client("alice"), await b.join_client("alice")

    assert await redis.spublish(ALICE, msgpack.packb({"t": "gift", "seq": 1})) == 2

    assert await recv_event(ws_a) == {"t": "gift", "seq": 1}
    assert await recv_event(ws_b) == {"t": "gift", "seq": 1}
    await ws_a.close()
    await ws_b.close()


async def test_a_hub_without_members_in_a_room_is_not_subscribed_to_it(start_node, redis: aioredis.Redis) -> None:
    a, b = await start_node(), await start_node()
    ws_a, ws_b = await a.join_client("alice"), await b.join_client("bob")

    assert await numsub(redis, ALICE) == 1
    assert await numsub(redis, BOB) == 1
    assert await redis.spublish(ALICE, msgpack.packb({"room": "alice"})) == 1  # a's broker only
    await redis.spublish(BOB, msgpack.packb({"room": "bob"}))
    assert await recv_event(ws_b) == {"room": "bob"}  # the alice event never came first
    assert await recv_event(ws_a) == {"room": "alice"}
    await ws_a.close()
    await ws_b.close()


async def test_join_returns_once_redis_confirmed_the_subscription(start_node, redis: aioredis.Redis) -> None:
    node = await start_node()
    ws = await connect(node.srv.url())
    conn = await node.srv.gateway.accepted.get()

    await node.hub.join("alice", conn)
    # Published right after join() returned, on another connection: it must be delivered.
    assert await redis.spublish(ALICE, msgpack.packb({"seq": 1})) == 1
    assert await recv_event(ws) == {"seq": 1}
    await ws.close()


async def test_concurrent_first_joins_share_one_subscription(start_node, redis: aioredis.Redis) -> None:
    node = await start_node()
    clients = [await connect(node.srv.url()) for _ in range(3)]
    conns = [await node.srv.gateway.accepted.get() for _ in clients]

    await asyncio.gather(*(node.hub.join("alice", conn) for conn in conns))

    assert await numsub(redis, ALICE) == 1
    assert node.hub.members("alice") == 3
    for ws in clients:
        await ws.close()


async def test_last_member_leaving_unsubscribes_the_room(start_node, redis: aioredis.Redis) -> None:
    node = await start_node()
    ws = await node.join_client("alice")
    await ws.close()
    async with asyncio.timeout(5):
        await node.srv.gateway.closed.get()  # on_close ran: the hub let go of the room

    await node.broker.sync()
    assert await numsub(redis, ALICE) == 0
    assert ALICE.encode() not in await redis.pubsub_channels()


async def test_leaving_and_rejoining_at_once_stays_subscribed(start_node, redis: aioredis.Redis) -> None:
    node = await start_node()
    ws = await connect(node.srv.url())
    conn = await node.srv.gateway.accepted.get()
    await node.hub.join("alice", conn)

    node.hub.leave("alice", conn)  # UNSUBSCRIBE queued...
    await node.hub.join("alice", conn)  # ...then SUBSCRIBE: Redis sees them in that order

    await node.broker.sync()
    assert await numsub(redis, ALICE) == 1
    assert await redis.spublish(ALICE, msgpack.packb({"seq": 1})) == 1
    assert await recv_event(ws) == {"seq": 1}
    await ws.close()


async def test_broker_resubscribes_after_its_connection_is_killed(start_node, redis: aioredis.Redis) -> None:
    a, b = await start_node(), await start_node()
    ws_a, ws_b = await a.join_client("alice"), await b.join_client("alice")

    assert await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 2

    async with asyncio.timeout(10):
        assert await a.hub.resubscribed.get() == {"alice"}
        assert await b.hub.resubscribed.get() == {"alice"}
    assert await numsub(redis, ALICE) == 2
    await redis.spublish(ALICE, msgpack.packb({"seq": 2}))
    assert await recv_event(ws_a) == {"seq": 2}
    assert await recv_event(ws_b) == {"seq": 2}
    await ws_a.close()
    await ws_b.close()


async def test_undecodable_payloads_are_dropped_and_delivery_goes_on(
    start_node, redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    node = await start_node()
    ws = await node.join_client("alice")

    await redis.spublish(ALICE, b"\xc1")  # never valid msgpack
    await redis.spublish(ALICE, msgpack.packb([1, 2, 3]))  # valid, but not a map
    await redis.spublish(ALICE, msgpack.packb({"seq": 3}))

    assert await recv_event(ws) == {"seq": 3}
    dropped = [r.getMessage() for r in caplog.records if r.name == "server.broker"]
    assert dropped == [
        "dropping undecodable event on room:{u:alice}: FormatError",
        "dropping event on room:{u:alice}: not a map (list)",
    ]
    await ws.close()


async def test_join_fails_with_unavailable_when_redis_is_unreachable(start_node) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    node = await start_node(f"redis://127.0.0.1:{port}", subscribe_timeout_s=0.2)
    ws = await connect(node.srv.url())
    conn = await node.srv.gateway.accepted.get()

    with pytest.raises(Unavailable):
        await node.hub.join("alice", conn)
    assert node.hub.members("alice") == 0
    await ws.close()
