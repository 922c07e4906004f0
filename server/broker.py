"""RedisBroker: one sharded pub/sub connection, carrying the channels of this process's rooms.

A room's channel (`keys.room_channel(room)`) is subscribed (SSUBSCRIBE) when its first local
member joins and unsubscribed (SUNSUBSCRIBE) when the last one leaves (`RoomHub` decides; this
class just does it). Each message is a msgpack map SPUBLISHed by a Lua script in the room's
slot; it is decoded and handed to `hub.dispatch(room, event)`. A payload that does not decode is
logged and dropped: the reader never dies of a bad message. Sharded pub/sub works the same on one
node and on Redis Cluster; on a cluster each primary gets its own RedisBroker, one per node
(`cluster_broker.ClusterBroker` routes rooms to them).

Connection loss (Redis restart, `CLIENT KILL`): the reader notices, reconnects with backoff,
re-subscribes every wanted channel, logs how long the gap was, and calls
`hub.on_resubscribed(rooms)` once Redis has confirmed them all: events published during the
gap were not delivered here, and the hub recovers them from the rooms' history.

Cluster only: a node that does not serve a room's slot refuses its SSUBSCRIBE (MOVED), and a
node that hands a slot to another (resharding, failover) ends its subscriptions in that slot
with a SUNSUBSCRIBE nobody asked for. Either way the room is dropped here, its pending joins fail
with `RoomMoved`, and `on_moved(rooms)` tells the owner, which subscribes them where they now live.

redis-py's own retry would reconnect and re-subscribe behind our back (hiding the gap), so the
pub/sub connection runs with retries off and this class owns reconnection. All commands go
through one writer task, in call order: a SUNSUBSCRIBE followed by a SSUBSCRIBE of the same
channel reaches Redis in that order. Redis answers in command order too, so each subscribe
confirmation is matched to the oldest SSUBSCRIBE still waiting for one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError, RedisError

from server import keys
from server.errors import ConfigError, Unavailable
from server.tasks import cancel_and_wait

if TYPE_CHECKING:
    from server.hub import RoomHub

__all__ = ["RedisBroker", "RoomMoved"]

log = logging.getLogger(__name__)

# Catches nothing, so a connection error surfaces to our reader instead of being retried.
_NO_RETRY = Retry(NoBackoff(), 0, supported_errors=())

_Command = tuple[str, str, "asyncio.Future[None] | None"]  # (PING|SSUBSCRIBE|SUNSUBSCRIBE, channel, barrier)


class RoomMoved(Unavailable):
    """Redis Cluster: this node does not (or no longer) serve the room's slot."""


class RedisBroker:
    """One redis-py PubSub connection shared by every room of this process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        hub: RoomHub | None = None,
        *,
        retry_delay_s: float = 0.05,
        max_retry_delay_s: float = 5.0,
        keepalive_s: float = 15.0,
        subscribe_timeout_s: float = 5.0,
        on_moved: Callable[[frozenset[str]], None] | None = None,
    ) -> None:
        if redis.get_encoder().decode_responses:
            raise ConfigError("RedisBroker needs a client with decode_responses=False (msgpack)")
        self._redis = redis
        self._retry_delay_s = retry_delay_s
        self._next_delay_s = retry_delay_s
        self._max_retry_delay_s = max_retry_delay_s
        self._keepalive_s = keepalive_s
        self._subscribe_timeout_s = subscribe_timeout_s
        self._hub: RoomHub | None = hub
        self._on_moved = on_moved
        self._wanted: set[str] = set()  # channels that should be subscribed
        self._live: set[str] = set()  # wanted channels whose SSUBSCRIBE Redis has confirmed
        # Per channel, one entry per SSUBSCRIBE awaiting confirmation: the futures it resolves.
        self._waiters: dict[str, deque[list[asyncio.Future[None]]]] = {}
        # One entry per PING sent, answered in order: a barrier future, or None for keepalive.
        self._pongs: deque[asyncio.Future[None] | None] = deque()
        self._unsubscribing: Counter[str] = Counter()  # SUNSUBSCRIBEs sent, not yet answered
        self._commands: asyncio.Queue[_Command] | None = None  # None while disconnected
        self._task: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        self._resyncing: set[str] | None = None  # channels re-sent after a reconnect

    def attach(self, hub: RoomHub) -> None:
        """Set the hub events are dispatched to (`RoomHub.attach_broker` calls this)."""
        self._hub = hub

    @property
    def connected(self) -> bool:
        return self._commands is not None

    def subscribed_rooms(self) -> frozenset[str]:
        """Rooms whose subscription Redis has confirmed on the current connection."""
        return frozenset(keys.room_of_channel(channel) for channel in self._live)

    def wants(self, room: str) -> bool:
        """True while `room` is to be subscribed here (confirmed or not)."""
        return keys.room_channel(room) in self._wanted

    async def start(self) -> None:
        """Start the reader; it connects (and keeps reconnecting) in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="giftcast-room-broker")

    async def stop(self) -> None:
        """Stop the reader and drop the pub/sub connection; pending joins get Unavailable."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for entries in self._waiters.values():
            for batch in entries:
                _settle(batch, Unavailable("room broker closed"))
        self._waiters.clear()

    aclose = stop

    # -- subscriptions (called by RoomHub) ------------------------------------------------------

    async def subscribe(self, room: str) -> None:
        """Subscribe `room`'s channel; returns once Redis confirmed it. Idempotent and cheap
        when already live. Raises Unavailable after `subscribe_timeout_s` (Redis down)."""
        channel = keys.room_channel(room)
        self._wanted.add(channel)
        entries = self._waiters.get(channel)
        if channel in self._live and not entries:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if entries:
            entries[-1].append(waiter)  # the SSUBSCRIBE already on its way covers us
        else:
            self._waiters[channel] = deque([[waiter]])
            if self._commands is not None:
                self._commands.put_nowait(("SSUBSCRIBE", channel, None))
            # else: the reconnect re-sends every wanted channel
        try:
            async with asyncio.timeout(self._subscribe_timeout_s):
                await asyncio.shield(waiter)
        except TimeoutError:
            raise Unavailable("room feed unavailable, try again") from None
        finally:
            if not waiter.done():  # timed out or cancelled: nobody will look at it any more
                for batch in self._waiters.get(channel, ()):
                    if waiter in batch:
                        batch.remove(waiter)

    def unsubscribe(self, room: str) -> None:
        """Unsubscribe `room`'s channel (sent in the background, after earlier commands)."""
        channel = keys.room_channel(room)
        if channel not in self._wanted:
            return
        self._wanted.discard(channel)
        self._live.discard(channel)
        if self._commands is not None:
            self._commands.put_nowait(("SUNSUBSCRIBE", channel, None))

    async def sync(self) -> None:
        """Wait until Redis has processed every command this broker sent before the call."""
        if self._commands is None:
            raise Unavailable("room broker is not connected")
        barrier: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commands.put_nowait(("PING", "", barrier))
        await barrier  # cancelling the caller cancels it; settling skips done futures

    # -- connection loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._serve_connection()
            except (RedisError, OSError) as exc:
                if self._down_since is None:
                    self._down_since = loop.time()
                    log.warning(
                        "room pub/sub connection lost (%s); events of %d rooms are missed until "
                        "it is back", exc, len(self._wanted),
                    )
                else:
                    log.debug("room pub/sub reconnect failed: %s", exc)
            except Exception:
                if self._down_since is None:
                    self._down_since = loop.time()
                log.exception("room pub/sub reader failed; reconnecting")
            await asyncio.sleep(self._next_delay_s)  # backoff between reconnect attempts
            self._next_delay_s = min(self._next_delay_s * 2, self._max_retry_delay_s)

    async def _serve_connection(self) -> None:
        pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=False)
        connection = None
        original_retry = None
        try:
            await pubsub.connect()
            connection = pubsub.connection
            original_retry, connection.retry = connection.retry, _NO_RETRY
            commands = self._begin_epoch()
            reader = asyncio.create_task(self._read(pubsub))
            writer = asyncio.create_task(self._write(pubsub, commands))
            try:
                done, _ = await asyncio.wait((reader, writer), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (reader, writer):
                    task.cancel()
                await asyncio.gather(reader, writer, return_exceptions=True)
            for task in done:
                task.result()  # re-raise the connection error that ended this connection
        finally:
            self._end_epoch()
            if connection is not None and original_retry is not None:
                connection.retry = original_retry  # it goes back to the shared pool
            await pubsub.aclose()

    def _begin_epoch(self) -> asyncio.Queue[_Command]:
        """On a fresh connection: queue one SSUBSCRIBE per wanted channel."""
        self._live.clear()
        self._next_delay_s = self._retry_delay_s  # connected: the backoff starts over
        commands: asyncio.Queue[_Command] = asyncio.Queue()
        for channel in list(self._waiters):
            if channel not in self._wanted:  # left while disconnected: nobody needs it now
                for batch in self._waiters.pop(channel):
                    _settle(batch, None)
        for channel in self._wanted:
            # Whatever SSUBSCRIBEs were in flight died with the old connection: one new
            # SSUBSCRIBE answers all their waiters.
            merged = [w for batch in self._waiters.get(channel, ()) for w in batch]
            self._waiters[channel] = deque([merged])
            commands.put_nowait(("SSUBSCRIBE", channel, None))
        if self._down_since is not None:
            self._resyncing = set(self._wanted)
            if not self._resyncing:
                self._resynced()
        self._commands = commands
        return commands

    def _end_epoch(self) -> None:
        self._commands = None
        self._live.clear()
        self._unsubscribing.clear()
        while self._pongs:
            barrier = self._pongs.popleft()
            if barrier is not None:
                _settle([barrier], Unavailable("room pub/sub connection lost"))

    async def _write(self, pubsub: PubSub, commands: asyncio.Queue[_Command]) -> None:
        while True:
            command, channel, barrier = await commands.get()
            if command == "PING":
                self._pongs.append(barrier)
                await pubsub.ping()
            elif command == "SSUBSCRIBE":
                await pubsub.ssubscribe(channel)
            else:
                self._unsubscribing[channel] += 1
                await pubsub.sunsubscribe(channel)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=self._keepalive_s)
            except MovedError as exc:  # a refused SSUBSCRIBE/SUNSUBSCRIBE; the connection is fine
                self._moved({c for c in self._wanted if key_slot(c.encode()) == exc.slot_id})
                continue
            if message is None:
                # Idle: a half-open connection would never tell us, so ask for a pong.
                if any(p is None for p in self._pongs):
                    raise RedisConnectionError("room pub/sub keepalive ping unanswered")
                assert self._commands is not None
                self._commands.put_nowait(("PING", "", None))
                continue
            kind = message["type"]
            if kind == "smessage":
                self._deliver(message["channel"], message["data"])
            elif kind == "ssubscribe":
                self._confirmed(message["channel"].decode())
            elif kind == "sunsubscribe":
                channel = message["channel"].decode()
                if self._unsubscribing[channel] > 0:  # the answer to ours
                    self._unsubscribing[channel] -= 1
                    if not self._unsubscribing[channel]:
                        del self._unsubscribing[channel]
                    self._live.discard(channel)
                elif channel in self._wanted:  # the node gave the channel's slot away
                    self._moved({channel})
            elif kind == "pong" and self._pongs:
                barrier = self._pongs.popleft()
                if barrier is not None:
                    _settle([barrier], None)

    # -- messages ------------------------------------------------------------------------------

    def _deliver(self, channel: bytes, payload: bytes) -> None:
        name = channel.decode(errors="replace")
        try:
            event = msgpack.unpackb(payload)
        except Exception as exc:
            log.warning("dropping undecodable event on %s: %s", name, type(exc).__name__)
            return
        if not isinstance(event, dict):
            log.warning("dropping event on %s: not a map (%s)", name, type(event).__name__)
            return
        if self._hub is None:
            return
        try:
            self._hub.dispatch(keys.room_of_channel(name), event)
        except Exception:
            log.exception("dispatching an event of %s failed", name)

    def _confirmed(self, channel: str) -> None:
        entries = self._waiters.get(channel)
        if entries:
            _settle(entries.popleft(), None)
            if not entries:
                del self._waiters[channel]
        if channel in self._wanted:
            self._live.add(channel)
        if self._resyncing is not None:
            self._resyncing.discard(channel)
            if not self._resyncing:
                self._resynced()

    def _moved(self, channels: set[str]) -> None:
        """Drop `channels`: this node does not serve their slot. Their joins fail with RoomMoved."""
        if not channels:
            return
        for channel in channels:
            self._wanted.discard(channel)
            self._live.discard(channel)
            for batch in self._waiters.pop(channel, ()):
                _settle(batch, RoomMoved("room moved to another Redis node, try again"))
        rooms = frozenset(keys.room_of_channel(channel) for channel in channels)
        if self._resyncing is not None:
            self._resyncing -= channels
            if not self._resyncing:
                self._resynced()
        if self._on_moved is None:
            log.warning("Redis moved %d rooms away from this pub/sub connection", len(rooms))
        else:
            self._on_moved(rooms)

    def _resynced(self) -> None:
        assert self._down_since is not None
        gap = asyncio.get_running_loop().time() - self._down_since
        self._down_since = None
        self._resyncing = None
        rooms = frozenset(keys.room_of_channel(channel) for channel in self._wanted)
        log.warning(
            "room pub/sub back after %.3f s; re-subscribed %d rooms; recovering the events "
            "published in that gap from history", gap, len(rooms),
        )
        if self._hub is not None:
            try:
                self._hub.on_resubscribed(rooms)
            except Exception:
                log.exception("hub.on_resubscribed failed")


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
