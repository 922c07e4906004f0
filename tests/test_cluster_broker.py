"""ClusterBroker (server/cluster_broker.py) on a real 3-node Valkey cluster: each room subscribed
on the node serving its slot, one connection per node, and subscriptions that follow a node
restart and a slot move by themselves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from server import keys
from server.cluster_broker import ClusterBroker
from server.hub import RoomHub
from server.redis_runtime import RedisRuntime
from server.settings import Settings
from tests.cluster import ValkeyCluster


class RecordingHub(RoomHub):
    """A RoomHub that also hands every dispatched event and resubscription to the test."""

    def __init__(self) -> None:
        super().__init__(Settings())
        self.events: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.resubscribed: asyncio.Queue[frozenset[str]] = asyncio.Queue()

    def dispatch(self, room: str, event: dict[str, Any]) -> int:
        self.events.put_nowait((room, event))
        return super().dispatch(room, event)

    def on_resubscribed(self, rooms: frozenset[str]) -> None:
        super().on_resubscribed(rooms)
        self.resubscribed.put_nowait(rooms)


async def next_item(queue: asyncio.Queue[Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        return await queue.get()


@pytest.fixture
async def start_broker(valkey_cluster: ValkeyCluster, cluster: RedisCluster) -> AsyncIterator[
        Callable[[], Awaitable[tuple[ClusterBroker, RecordingHub]]]]:
    """Factory: a RecordingHub fed by a ClusterBroker, wired the way the app wires it. Its
    periodic slot-map check is off (60 s), so what the tests see is the broker reacting to Redis."""
    runtimes: list[tuple[RedisRuntime, ClusterBroker]] = []

    async def start() -> tuple[ClusterBroker, RecordingHub]:
        runtime = await RedisRuntime(Settings(redis_url=valkey_cluster.url)).__aenter__()
        hub = RecordingHub()
        broker = ClusterBroker(runtime.client, hub, node_client=runtime.node_client, poll_s=60)  # type: ignore[arg-type]
        hub.attach_broker(broker)  # type: ignore[arg-type]
        await broker.start()
        runtimes.append((runtime, broker))
        return broker, hub

    yield start
    for runtime, broker in runtimes:
        await broker.stop()
        await runtime.__aexit__(None, None, None)


def rooms_on_every_node(valkey_cluster: ValkeyCluster, per_node: int = 2) -> list[str]:
    rooms: dict[int, list[str]] = {}
    for i in range(200):
        room = f"creator{i}"
        on = rooms.setdefault(valkey_cluster.owner(keys.room_channel(room)), [])
        if len(on) < per_node:
            on.append(room)
    assert len(rooms) == len(valkey_cluster.nodes)
    return [room for on in rooms.values() for room in on]


async def publish(cluster: RedisCluster, room: str, seq: int) -> int:
    return await cluster.spublish(keys.room_channel(room), msgpack.packb({"room": room, "seq": seq}))


async def subscriber_connections(valkey_cluster: ValkeyCluster, index: int) -> int:
    """Connections on node `index` holding at least one shard-channel subscription."""
    async with aioredis.Redis(port=valkey_cluster.nodes[index].port) as node:
        clients = await node.client_list()
    return sum(int(client["ssub"]) > 0 for client in clients)


async def test_each_room_is_subscribed_on_its_node_with_one_connection_per_node(start_broker, valkey_cluster, cluster):
    broker, hub = await start_broker()
    rooms = rooms_on_every_node(valkey_cluster)
    await asyncio.gather(*(broker.subscribe(room) for room in rooms))
    assert [await subscriber_connections(valkey_cluster, i) for i in range(3)] == [1, 1, 1]
    for seq, room in enumerate(rooms):
        assert await publish(cluster, room, seq) == 1
    received = [await next_item(hub.events) for _ in rooms]
    assert [(room, event["seq"]) for room, event in received] == list(zip(rooms, range(len(rooms)), strict=True))


async def test_a_room_left_by_its_last_member_is_unsubscribed_on_its_node(start_broker, valkey_cluster, cluster):
    broker, _ = await start_broker()
    await broker.subscribe("alice")
    broker.unsubscribe("alice")
    await broker.sync()
    assert await publish(cluster, "alice", 1) == 0


async def test_a_restarted_node_gets_its_rooms_back_and_the_gap_is_reported(start_broker, valkey_cluster, cluster):
    broker, hub = await start_broker()
    rooms = rooms_on_every_node(valkey_cluster, per_node=1)
    await asyncio.gather(*(broker.subscribe(room) for room in rooms))
    restarted = valkey_cluster.owner(keys.room_channel(rooms[0]))
    await asyncio.to_thread(valkey_cluster.restart, restarted)
    assert await next_item(hub.resubscribed) == frozenset({rooms[0]})
    assert await publish(cluster, rooms[0], 7) == 1
    assert await next_item(hub.events) == (rooms[0], {"room": rooms[0], "seq": 7})


async def test_a_room_whose_slot_moves_is_resubscribed_on_its_new_node(start_broker, valkey_cluster, cluster):
    broker, hub = await start_broker()
    await broker.subscribe("alice")
    slot, home = key_slot(keys.room_channel("alice").encode()), valkey_cluster.owner(keys.room_channel("alice"))
    await asyncio.to_thread(valkey_cluster.move_slot, slot, (home + 1) % 3)
    try:
        assert await next_item(hub.resubscribed) == frozenset({"alice"})
        assert await publish(cluster, "alice", 3) == 1
        assert await next_item(hub.events) == ("alice", {"room": "alice", "seq": 3})
    finally:
        await asyncio.to_thread(valkey_cluster.move_slot, slot, home)


async def test_joining_a_room_whose_slot_moved_unnoticed_follows_the_moved_reply(start_broker, valkey_cluster, cluster):
    broker, hub = await start_broker()  # its slot map is read now, before the move
    slot, home = key_slot(keys.room_channel("alice").encode()), valkey_cluster.owner(keys.room_channel("alice"))
    await asyncio.to_thread(valkey_cluster.move_slot, slot, (home + 1) % 3)
    try:
        await broker.subscribe("alice")
        assert await publish(cluster, "alice", 4) == 1
        assert await next_item(hub.events) == ("alice", {"room": "alice", "seq": 4})
    finally:
        await asyncio.to_thread(valkey_cluster.move_slot, slot, home)
