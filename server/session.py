"""Session: what one WebSocket connection may do, frame by frame.

The transport (`ws_transport.py`) hands each complete message to `on_message`; replies go back
on the same connection with the request's ``id``. A request that fails gets an ``error`` frame
with a wire code from the error tree and changes nothing. Room events arrive separately,
through the hub.

Joining delivers every room event exactly once after the reply: the hub holds the
connection's events (`RoomHub.join(hold=True)`) until the room has been read, which happens
only once this process is subscribed to the room. The read is either the history after the
client's `since` position (a resume: the `joined` reply is followed by exactly the missed
events) or, when the history cannot give them, a snapshot. Then `RoomHub.release` queues the
missed events and the held live ones beyond what the read had, after the reply.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisClusterException, RedisError

from server import codec
from server.auth import Principal
from server.logs import request_id as log_request_id
from server.errors import Forbidden, GiftcastError, NotInRoom, TooManyRooms, Unavailable

if TYPE_CHECKING:
    from server.connection import Connection
    from server.frames import SharedFrame
    from server.hub import Position
    from server.services import Services

__all__ = ["Session"]

log = logging.getLogger("giftcast.session")


class Session:
    def __init__(self, services: Services, principal: Principal, connection: Connection):
        self._services = services
        self.principal = principal
        self._conn = connection
        self._rooms: set[str] = set()
        self.log_id = "ws-" + secrets.token_hex(6)  # the request id of this connection's log records
        # The transport's clock (loop time): the transport takes tokens from it (ratelimit.py).
        self.frame_bucket = services.user_frames.acquire(principal.user_id, asyncio.get_running_loop().time())

    async def on_message(self, message: bytes | str) -> None:
        log_request_id.set(self.log_id)  # each message runs in its own task: this stays local
        request_id: codec.RequestId = None
        reply: dict[str, Any] | None
        is_gift = False
        try:
            frame = codec.decode(message, max_count=self._services.settings.gift_max_count)
            request_id = frame.id
            is_gift = isinstance(frame, codec.SendGift)
            reply = await self._handle(frame)
        except codec.FrameError as exc:
            reply = _error(exc.request_id, exc.error)
        except GiftcastError as exc:
            reply = _error(request_id, exc)
        except (RedisError, RedisClusterException):  # the latter: Redis Cluster topology trouble
            log.exception("redis failed during a request")
            # The outcome of a gift is unknown here: the client retries with the same key.
            reply = _error(request_id, Unavailable("storage unavailable; retry with the same key"))
        if reply is not None:
            self._services.metrics.ws_reply(is_gift, reply)
            self._conn.send(reply)

    def on_close(self) -> None:
        self._services.hub.leave_all(self._conn)
        self._rooms.clear()
        self._services.user_frames.release(self.principal.user_id)
        self._services.connection_closed(self._conn)

    async def _handle(self, frame: codec.ClientFrame) -> dict[str, Any] | None:
        match frame:
            case codec.SendGift():
                if frame.room not in self._rooms:
                    raise NotInRoom("join the room before sending gifts into it")
                receipt = await self._services.gifts.send_gift(self.principal, frame)
                return {"t": "ack", "id": frame.id, "room": frame.room, "receipt": receipt.to_wire()}
            case codec.Join():
                return await self._join(frame)
            case codec.Leave():
                self._rooms.discard(frame.room)
                self._services.hub.leave(frame.room, self._conn)
                return {"t": "left", "id": frame.id, "room": frame.room}
            case codec.Ping():
                return {"t": "pong", "id": frame.id, "server_time": int(time.time() * 1000)}

    async def _join(self, frame: codec.Join) -> None:
        """Reply `joined` itself, then let the held room events follow it."""
        if self.principal.role == "overlay" and frame.room != self.principal.user_id:
            raise Forbidden("an overlay token may only join its own creator's room")
        room, hub = frame.room, self._services.hub
        new = room not in self._rooms
        if new and len(self._rooms) >= self._services.settings.max_rooms_per_connection:
            raise TooManyRooms("leave a room before joining another")
        try:
            await hub.join(room, self._conn, hold=True)  # if this raises, it left the room
            reply, replay, position = await self._read_room(frame)
        except BaseException:
            if new:
                hub.leave(room, self._conn)
            else:
                hub.release(room, self._conn)
            if room not in hub.rooms_of(self._conn):
                self._rooms.discard(room)
            raise
        self._rooms.add(room)
        self._conn.send(reply)
        hub.release(room, self._conn, replay, position)

    async def _read_room(self, frame: codec.Join) -> tuple[dict[str, Any], tuple[SharedFrame, ...], Position]:
        """The `joined` reply, the events to replay after it, and the position they reach."""
        joined: dict[str, Any] = {"t": "joined", "id": frame.id, "room": frame.room}
        if frame.since is not None:
            view = await self._services.history.read(frame.room, frame.since.seq)
            replay = view.after(frame.since)
            if replay is not None:
                joined.update(resumed=True, epoch=view.epoch, seq=view.head, replayed=len(replay),
                              viewers=await self._services.viewers.count(frame.room))
                return joined, replay, (view.epoch, view.head)
        snapshot = await self._services.room_snapshot(frame.room)
        joined.update(resumed=False, reset=frame.since is not None, snapshot=snapshot)
        return joined, (), (snapshot["epoch"], snapshot["seq"])


def _error(request_id: codec.RequestId, error: GiftcastError) -> dict[str, Any]:
    return {"t": "error", "id": request_id, **error.to_wire()}
