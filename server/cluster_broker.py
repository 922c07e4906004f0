"""ClusterBroker: the room feed on Redis Cluster, one sharded pub/sub connection per primary.

A room's channel `room:{u:CREATOR}` hashes to the creator's slot, so the script that changes the
room SPUBLISHes on the node that holds the room's state, atomically with its history write, and
only that node's subscribers get it. ClusterBroker keeps the slot map (CLUSTER SLOTS) and one
`RedisBroker` per primary (one connection each, created on first use), and subscribes each room
on the broker of the node that serves its slot. To the hub it looks like one `RedisBroker`.

Topology changes are noticed two ways, and each leads to a reconcile:
- a node refuses a room's SSUBSCRIBE (MOVED) or ends its subscriptions in a slot it handed away
  (resharding, failover): its broker drops those rooms and calls `_moved`, which reconciles now;
- otherwise every `poll_s`; and every `fast_poll_s` while a node broker is disconnected (after a
  failover its slots are served by another address) or a room could not be placed.
A reconcile reads CLUSTER SLOTS, subscribes each room whose node changed (or dropped it) on its
new node, and once Redis confirmed them calls `hub.on_resubscribed(rooms)`: events published
while a room moved were not delivered. A node that comes back on the same address (restart) is
handled by its own broker, which re-subscribes and calls `hub.on_resubscribed` itself.

redis-py's `ClusterPubSub` (8.1) also keeps one connection per node, but it does not confirm
subscriptions (a join must wait for that), re-subscribes silently on reconnect (hiding the gap
from `on_resubscribed`), polls nodes round-robin from one reader, and re-routes only when the
client happens to refresh its slot cache; hence this class, built from the tested `RedisBroker`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

from server import keys
from server.broker import RedisBroker, RoomMoved
from server.errors import Unavailable
from server.tasks import cancel_and_wait

if TYPE_CHECKING:
    from server.hub import RoomHub

__all__ = ["ClusterBroker"]

log = logging.getLogger(__name__)


class ClusterBroker:
    """Routes each room's subscription to the node serving its slot; follows slot moves."""

    def __init__(
        self,
        cluster: RedisCluster,
        hub: RoomHub | None = None,
        *,
        node_client: Callable[[str, int], Redis],
        poll_s: float = 5.0,
        fast_poll_s: float = 0.25,
        subscribe_timeout_s: float = 5.0,
        **broker_options: Any,
    ) -> None:
        self._cluster = cluster
        self._hub = hub
        self._node_client = node_client
        self._poll_s = poll_s
        self._fast_poll_s = fast_poll_s
        self._subscribe_timeout_s = subscribe_timeout_s
        self._broker_options = {"subscribe_timeout_s": subscribe_timeout_s, **broker_options}
        self._brokers: dict[str, tuple[RedisBroker, Redis]] = {}  # "host:port" -> its broker
        self._starts: list[int] = []  # slot map: sorted first slots of ranges ...
        self._owners: list[tuple[int, str]] = []  # ... and each range's (last slot, node)
        self._rooms: dict[str, str] = {}  # wanted room -> the node it is subscribed on
        self._wake = asyncio.Event()
        self._refreshing: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def attach(self, hub: RoomHub) -> None:
        """Set the hub events are dispatched to (`RoomHub.attach_broker` calls this)."""
        self._hub = hub
        for broker, _ in self._brokers.values():
            broker.attach(hub)

    @property
    def connected(self) -> bool:
        """True when every node connection in use is up."""
        return all(broker.connected for broker, _ in self._brokers.values())

    def subscribed_rooms(self) -> frozenset[str]:
        """Rooms whose subscription their node has confirmed."""
        return frozenset().union(*(broker.subscribed_rooms() for broker, _ in self._brokers.values()))

    async def start(self) -> None:
        if self._task is None:
            await self._refresh()
            self._task = asyncio.create_task(self._run(), name="giftcast-cluster-broker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._refreshing is not None:
            self._refreshing.cancel()
        brokers, self._brokers = self._brokers, {}
        for broker, client in brokers.values():
            await broker.stop()
            await client.aclose()

    aclose = stop

    # -- subscriptions (called by RoomHub) ------------------------------------------------------

    async def subscribe(self, room: str) -> None:
        """Subscribe `room` on the node serving its slot; returns once that node confirmed.
        Raises Unavailable if that cannot be done within `subscribe_timeout_s`."""
        previous = self._rooms.setdefault(room, "")
        try:
            async with asyncio.timeout(self._subscribe_timeout_s):
                while True:
                    node = self._rooms[room] = self._node_of(room)
                    try:
                        await (await self._broker(node)).subscribe(room)
                        break
                    except RoomMoved:
                        if room not in self._rooms:
                            raise  # left meanwhile: nobody waits for it any more
                        await self._refresh()  # our slot map is stale
        except TimeoutError:
            raise Unavailable("room feed unavailable, try again") from None
        if previous and previous != node:  # it moved before the reconcile got to it
            self._notify_resubscribed(frozenset({room}))

    def unsubscribe(self, room: str) -> None:
        node = self._rooms.pop(room, None)
        if node in self._brokers:
            self._brokers[node][0].unsubscribe(room)

    async def sync(self) -> None:
        """Wait until every node has processed every command sent to it before the call."""
        await asyncio.gather(*(broker.sync() for broker, _ in self._brokers.values()))

    # -- topology ----------------------------------------------------------------------------

    async def _broker(self, node: str) -> RedisBroker:
        """The broker of `node` ("host:port"), started on first use."""
        if node not in self._brokers:
            host, _, port = node.rpartition(":")
            client = self._node_client(host, int(port))
            broker = RedisBroker(client, self._hub, on_moved=self._moved, **self._broker_options)
            self._brokers[node] = (broker, client)
            await broker.start()
        return self._brokers[node][0]

    def _node_of(self, room: str) -> str:
        slot = key_slot(keys.room_channel(room).encode())
        index = bisect.bisect_right(self._starts, slot) - 1
        if index < 0 or self._owners[index][0] < slot:
            raise Unavailable("no Redis node serves this room right now")
        return self._owners[index][1]

    def _moved(self, rooms: frozenset[str]) -> None:
        self._wake.set()

    async def _refresh(self) -> None:
        """Re-read the slot map (one CLUSTER SLOTS; concurrent callers share it)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._read_slots())
        await asyncio.shield(self._refreshing)

    async def _read_slots(self) -> None:
        ranges = sorted(
            (start, end, f"{info['primary'][0]}:{info['primary'][1]}")
            for (start, end), info in (await self._cluster.cluster_slots()).items()
        )
        self._starts = [start for start, _, _ in ranges]
        self._owners = [(end, node) for _, end, node in ranges]

    async def _run(self) -> None:
        delay = self._poll_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            try:
                settled = await self._reconcile()
            except (RedisError, RedisClusterException, OSError, Unavailable) as exc:
                log.warning("cannot read the Redis Cluster slot map (%s); retrying", exc)
                settled = False
            # Something is off (a room not placed, a node unreachable): look again soon.
            delay = self._poll_s if settled and self.connected else self._fast_poll_s

    async def _reconcile(self) -> bool:
        """Bring every room to the node serving its slot; True if all are subscribed there."""
        await self._refresh()
        moved: dict[str, str] = {}
        for room, node in self._rooms.items():
            target = self._node_of(room)
            current = self._brokers.get(node)
            if target != node or current is None or not current[0].wants(room):
                if current is not None and target != node:
                    current[0].unsubscribe(room)
                moved[room] = target
        self._rooms.update(moved)
        settled = await self._resubscribe(moved) if moved else True
        await self._retire_idle()
        return settled

    async def _resubscribe(self, moved: dict[str, str]) -> bool:
        """Subscribe rooms on their new nodes (room -> node), then tell the hub about the gap;
        True if all of them made it."""
        log.warning("re-subscribing %d rooms on the Redis nodes now serving them", len(moved))
        brokers = [await self._broker(node) for node in moved.values()]
        results = await asyncio.gather(
            *(broker.subscribe(room) for broker, room in zip(brokers, moved, strict=True)), return_exceptions=True)
        back = frozenset(room for room, result in zip(moved, results, strict=True) if result is None and room in self._rooms)
        if back:
            self._notify_resubscribed(back)
        return len(back) == len(moved)

    def _notify_resubscribed(self, rooms: frozenset[str]) -> None:
        if self._hub is not None:
            try:
                self._hub.on_resubscribed(rooms)
            except Exception:
                log.exception("hub.on_resubscribed failed")

    async def _retire_idle(self) -> None:
        """Close the brokers of nodes that left the cluster and carry none of our rooms."""
        serving = {node for _, node in self._owners} | set(self._rooms.values())
        for node in [node for node in self._brokers if node not in serving]:
            broker, client = self._brokers.pop(node)  # a node that left the cluster
            await broker.stop()
            await client.aclose()
