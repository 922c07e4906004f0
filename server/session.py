"""Session: what one WebSocket connection may do, frame by frame.

The transport (`ws_transport.py`) hands each complete message to `on_message`; replies go back
on the same connection with the request's ``id``. A request that fails gets an ``error`` frame
with a wire code from the error tree and changes nothing. Room events arrive separately,
through the hub.

Joining orders events after the snapshot: `RoomHub.join` returns once this process is
subscribed to the room, and only then is the snapshot read, so no event published after the
snapshot can be missed; events with ``seq <= snapshot.seq`` may arrive too and are already
counted in it (clients skip them by seq).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisClusterException, RedisError

from server import codec
from server.auth import Principal
from server.errors import Forbidden, GiftcastError, NotInRoom, TooManyRooms, Unavailable

if TYPE_CHECKING:
    from server.connection import Connection
    from server.services import Services

__all__ = ["Session"]

log = logging.getLogger("giftcast.session")


class Session:
    def __init__(self, services: Services, principal: Principal, connection: Connection):
        self._services = services
        self.principal = principal
        self._conn = connection
        self._rooms: set[str] = set()

    async def on_message(self, message: bytes | str) -> None:
        request_id: codec.RequestId = None
        try:
            frame = codec.decode(message, max_count=self._services.settings.gift_max_count)
            request_id = frame.id
            reply = await self._handle(frame)
        except codec.FrameError as exc:
            reply = _error(exc.request_id, exc.error)
        except GiftcastError as exc:
            reply = _error(request_id, exc)
        except (RedisError, RedisClusterException):  # the latter: Redis Cluster topology trouble
            log.exception("redis failed during a request")
            # The outcome of a gift is unknown here: the client retries with the same key.
            reply = _error(request_id, Unavailable("storage unavailable; retry with the same key"))
        self._conn.send(reply)

    def on_close(self) -> None:
        self._services.hub.leave_all(self._conn)
        self._rooms.clear()

    async def _handle(self, frame: codec.ClientFrame) -> dict[str, Any]:
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

    async def _join(self, frame: codec.Join) -> dict[str, Any]:
        if self.principal.role == "overlay" and frame.room != self.principal.user_id:
            raise Forbidden("an overlay token may only join its own creator's room")
        if frame.room not in self._rooms:
            if len(self._rooms) >= self._services.settings.max_rooms_per_connection:
                raise TooManyRooms("leave a room before joining another")
            await self._services.hub.join(frame.room, self._conn)
            self._rooms.add(frame.room)
        snapshot = await self._services.lives.snapshot(frame.room)
        snapshot["viewers"] = self._services.hub.members(frame.room)
        return {"t": "joined", "id": frame.id, "room": frame.room, "snapshot": snapshot}


def _error(request_id: codec.RequestId, error: GiftcastError) -> dict[str, Any]:
    return {"t": "error", "id": request_id, **error.to_wire()}
