"""RoomHub: which local connections are in which room, and fan-out of room events to them.

Every room event reaches this process once, through the `RedisBroker`'s pub/sub connection,
and `dispatch()` hands it to every local member as one `SharedFrame`: encoded once per wire
format, queued (never awaited) on each connection.

Ordering contract of `join()`: the connection is a member from the moment `join()` is called,
and `join()` returns only once Redis has confirmed this process's subscription to the room's
channel. So an event published after `join()` returns is delivered to the connection. A caller
that reads the room's state or history after `join()` returns sees every event either there or
on the connection, possibly both: clients drop duplicates by the event's `seq`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server.connection import Connection, SharedFrame
from server.errors import TooManyRooms
from server.settings import Settings

if TYPE_CHECKING:
    from server.broker import RedisBroker

__all__ = ["RoomHub"]

log = logging.getLogger(__name__)


class RoomHub:
    """Local room membership and fan-out. Not thread-safe: use it from the event loop only."""

    def __init__(self, settings: Settings, broker: RedisBroker | None = None) -> None:
        self._max_rooms = settings.max_rooms_per_connection
        self._members: dict[str, set[Connection]] = {}
        self._rooms_of: dict[Connection, set[str]] = {}
        self._broker: RedisBroker | None = None
        # Called with (room, event) for every event dispatched here, before the members get it.
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        if broker is not None:
            self.attach_broker(broker)

    def attach_broker(self, broker: RedisBroker) -> None:
        """Route room subscriptions through `broker`, which feeds events back to `dispatch`."""
        self._broker = broker
        broker.attach(self)

    async def join(self, room: str, conn: Connection) -> None:
        """Add `conn` to `room`; returns once the room's channel subscription is live.

        Raises TooManyRooms past `settings.max_rooms_per_connection`, and Unavailable if the
        subscription cannot be confirmed (the join is then undone). Joining twice is a no-op.
        """
        joined = self._rooms_of.get(conn)
        if joined is None:
            joined = self._rooms_of[conn] = set()
        elif room not in joined and len(joined) >= self._max_rooms:
            raise TooManyRooms(f"a connection may join at most {self._max_rooms} rooms")
        joined.add(room)
        self._members.setdefault(room, set()).add(conn)
        if self._broker is None:
            return
        try:
            # Cheap when the room is already subscribed; the first join of a room waits for
            # Redis to confirm SUBSCRIBE (later joiners wait for the same confirmation).
            await self._broker.subscribe(room)
        except BaseException:
            self.leave(room, conn)
            raise

    def leave(self, room: str, conn: Connection) -> None:
        """Remove `conn` from `room`; the last local member leaving unsubscribes the channel."""
        members = self._members.get(room)
        if members is None or conn not in members:
            return
        members.discard(conn)
        joined = self._rooms_of.get(conn)
        if joined is not None:
            joined.discard(room)
            if not joined:
                del self._rooms_of[conn]
        if not members:
            del self._members[room]
            if self._broker is not None:
                self._broker.unsubscribe(room)

    def leave_all(self, conn: Connection) -> None:
        """Remove `conn` from every room (call it from the session's on_close)."""
        for room in tuple(self._rooms_of.get(conn, ())):
            self.leave(room, conn)

    def members(self, room: str) -> int:
        """How many local connections are in `room`."""
        return len(self._members.get(room, ()))

    def rooms_of(self, conn: Connection) -> frozenset[str]:
        return frozenset(self._rooms_of.get(conn, ()))

    def local_rooms(self) -> frozenset[str]:
        """Rooms with at least one local member (exactly the channels the broker wants)."""
        return frozenset(self._members)

    def dispatch(self, room: str, event: dict[str, Any]) -> int:
        """Queue `event` on every local member of `room`; returns how many. Never awaits.

        Iterates a snapshot: a member cut (4008) or leaving during the loop is harmless.
        """
        for listener in self.listeners:
            listener(room, event)
        members = self._members.get(room)
        if not members:
            return 0
        frame = SharedFrame(event)
        for conn in tuple(members):
            conn.send_shared(frame)
        return len(members)

    def on_resubscribed(self, rooms: frozenset[str]) -> None:
        """Called by the broker after it re-subscribed `rooms` following a lost connection.

        Events published to these rooms while the connection was down were not delivered.
        Hook for gap recovery (replaying `keys.live_history` since each member's last seq):
        not implemented yet, so the gap is only logged (the broker logs its duration).
        """
        if rooms:
            log.warning("room events may be missing in %d rooms after pub/sub reconnect", len(rooms))
