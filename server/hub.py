"""RoomHub: which local connections are in which room, and fan-out of room events to them.

Every room event reaches this process once, through the `RedisBroker`'s pub/sub connection,
and `dispatch()` hands it to every local member as one `SharedFrame`: encoded once per wire
format, queued (never awaited) on each connection.

Ordering contract of `join()`: the connection is a member from the moment `join()` is called,
and `join()` returns only once Redis has confirmed this process's subscription to the room's
channel. So an event published after `join()` returns is delivered to the connection.

Exactly once across a join (`join(hold=True)` ... `release()`): while held, the connection's
room events are buffered instead of sent. The caller reads the room (a snapshot, or the history
after the client's position) once `join()` returned, replies, and calls `release()` with the
position its read reached: the buffered events beyond it follow, and copies of events at or
below it that pub/sub delivers late are dropped for that connection.

Gap recovery: the hub remembers, per room, the position every released member has reached
(`epoch`, `seq`). An event whose seq skips ahead of it, or the broker re-subscribing after a
lost connection (`on_resubscribed`), starts a recovery: the room's events are buffered while the
missed ones are read from the history and dispatched, in order, once; then the buffered ones
follow (those the read already had are dropped). If the history no longer reaches back, members
get a `reset` frame with a fresh snapshot instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from server.connection import Connection
from server.errors import TooManyRooms
from server.frames import SharedFrame
from server.history import Position
from server.settings import Settings
from server.tasks import cancel_and_wait

if TYPE_CHECKING:
    from server.broker import RedisBroker
    from server.history import RoomHistory
    from server.metrics import Metrics

__all__ = ["RoomHub"]

log = logging.getLogger(__name__)

_Buffered = tuple[Any, int | None, SharedFrame, object]  # epoch, seq, frame, coalescing key


class _Gate:
    """A member between `join(hold=True)` and the first live event past its read."""

    __slots__ = ("buffer", "floor")

    def __init__(self) -> None:
        self.buffer: list[_Buffered] | None = []  # held: events wait here; None once released
        self.floor: Position | None = None  # released: drop events at or below this position


class RoomHub:
    """Local room membership and fan-out. Not thread-safe: use it from the event loop only."""

    def __init__(self, settings: Settings, broker: RedisBroker | None = None, metrics: Metrics | None = None) -> None:
        self._max_rooms = settings.max_rooms_per_connection
        self._hold_limit = settings.resume_max_events
        self._metrics = metrics
        self._members: dict[str, set[Connection]] = {}
        self._rooms_of: dict[Connection, set[str]] = {}
        self._gates: dict[str, dict[Connection, _Gate]] = {}
        self._last: dict[str, Position] = {}  # lowest position of the room's released members
        self._recovering: dict[str, list[dict[str, Any]]] = {}  # events held during a recovery
        self._tasks: set[asyncio.Task[None]] = set()
        self._history: RoomHistory | None = None
        self._snapshot: Callable[[str], Awaitable[dict[str, Any]]] | None = None
        self._broker: RedisBroker | None = None
        # Called with (room, event) for every event dispatched here, before the members get it.
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        if broker is not None:
            self.attach_broker(broker)

    def attach_broker(self, broker: RedisBroker) -> None:
        """Route room subscriptions through `broker`, which feeds events back to `dispatch`."""
        self._broker = broker
        broker.attach(self)

    def attach_history(self, history: RoomHistory, snapshot: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
        """Enable gap recovery: missed events come from `history`, or else a `snapshot(room)`."""
        self._history = history
        self._snapshot = snapshot

    async def aclose(self) -> None:
        """Cancel recoveries in flight."""
        await cancel_and_wait(*self._tasks)

    # -- membership -------------------------------------------------------------------------------

    async def join(self, room: str, conn: Connection, *, hold: bool = False) -> None:
        """Add `conn` to `room`; returns once the room's channel subscription is live.

        With `hold`, the connection's events for this room are buffered until `release()`.
        Raises TooManyRooms past `settings.max_rooms_per_connection`, and Unavailable if the
        subscription cannot be confirmed (the join is then undone). Joining twice is a no-op
        (apart from the hold).
        """
        joined = self._rooms_of.get(conn)
        if joined is None:
            joined = self._rooms_of[conn] = set()
        elif room not in joined and len(joined) >= self._max_rooms:
            raise TooManyRooms(f"a connection may join at most {self._max_rooms} rooms")
        joined.add(room)
        self._members.setdefault(room, set()).add(conn)
        if hold:
            self._gates.setdefault(room, {})[conn] = _Gate()
        if self._broker is None:
            return
        try:
            # Cheap when the room is already subscribed; the first join of a room waits for
            # Redis to confirm SUBSCRIBE (later joiners wait for the same confirmation).
            await self._broker.subscribe(room)
        except BaseException:
            self.leave(room, conn)
            raise

    def release(self, room: str, conn: Connection, replay: Iterable[SharedFrame] = (),
                position: Position | None = None) -> None:
        """End `conn`'s hold on `room`: queue `replay` (the events up to `position` it missed),
        then the events buffered meanwhile that lie beyond `position`. Never awaits.

        `position` is what the caller's read reached; None sends every buffered event."""
        gates = self._gates.get(room)
        gate = gates.get(conn) if gates else None
        if gate is None or gate.buffer is None:
            return
        buffered, gate.buffer = gate.buffer, None
        for frame in replay:
            conn.send_shared(frame)
        for index, (epoch, seq, frame, key) in enumerate(buffered):
            if key is not None:
                conn.send_coalesced(key, frame)
            elif seq is None or position is None or _beyond(epoch, seq, position):
                if seq is not None and position is not None and epoch == position[0] \
                        and seq > position[1] + 1 and self._history is not None:
                    # Pub/sub lost events between the read and this one: still held, read them.
                    gate.buffer = buffered[index:]
                    self._spawn(self._refill(room, conn, gate, position))
                    return
                conn.send_shared(frame)
                if seq is not None:
                    position = (epoch, seq)
        if position is None or conn not in self._members.get(room, ()):
            self._drop_gate(room, conn)
            return
        gate.floor = position  # pub/sub may still bring copies of events the read had
        last = self._last.get(room)
        if last is None or last[0] != position[0] or position[1] < last[1]:
            self._last[room] = position

    def leave(self, room: str, conn: Connection) -> None:
        """Remove `conn` from `room`; the last local member leaving unsubscribes the channel."""
        members = self._members.get(room)
        if members is None or conn not in members:
            return
        members.discard(conn)
        self._drop_gate(room, conn)
        joined = self._rooms_of.get(conn)
        if joined is not None:
            joined.discard(room)
            if not joined:
                del self._rooms_of[conn]
        if not members:
            del self._members[room]
            self._last.pop(room, None)
            self._recovering.pop(room, None)
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

    # -- fan-out ----------------------------------------------------------------------------------

    def dispatch(self, room: str, event: dict[str, Any]) -> int:
        """Queue `event` on every local member of `room`; returns how many. Never awaits.

        Events with a `seq` are checked against the room's position: a copy of one already
        delivered goes only to held members (they sort it out on release), one that skips
        ahead starts a gap recovery (when history is attached).
        """
        for listener in self.listeners:
            listener(room, event)
        members = self._members.get(room)
        if not members:
            return 0
        seq, epoch = event.get("seq"), event.get("epoch")
        if self._metrics is not None:
            self._metrics.fanout(len(members))  # once per event, never per connection
        if type(seq) is not int:
            self._fanout(room, members, SharedFrame(event), epoch, None)
            return len(members)
        held = self._recovering.get(room)
        if held is not None:
            held.append(event)
            return len(members)
        last = self._last.get(room)
        if last is not None and last[0] == epoch:
            if seq <= last[1]:
                self._fanout(room, members, SharedFrame(event), epoch, seq, held_only=True)
                return len(members)
            if seq > last[1] + 1 and self._recover(room, last, [event]):
                return len(members)
        self._last[room] = (epoch, seq)
        self._fanout(room, members, SharedFrame(event), epoch, seq)
        return len(members)

    def dispatch_latest(self, room: str, event: dict[str, Any]) -> int:
        """Queue an event only whose latest version matters (`viewers`) on every member: an
        unsent older one of the same type for the room is replaced (`send_coalesced`)."""
        members = self._members.get(room)
        if not members:
            return 0
        self._fanout(room, members, SharedFrame(event), None, None, key=(event["t"], room))
        return len(members)

    def _fanout(self, room: str, members: set[Connection], frame: SharedFrame, epoch: Any,
                seq: int | None, *, key: object = None, held_only: bool = False) -> None:
        """Iterates a snapshot: a member cut (4008) or leaving during the loop is harmless."""
        gates = self._gates.get(room)
        if not gates:
            if held_only:
                return
            if key is None:
                for conn in tuple(members):
                    conn.send_shared(frame)
            else:
                for conn in tuple(members):
                    conn.send_coalesced(key, frame)
            return
        for conn in tuple(members):
            gate = gates.get(conn) if gates else None
            if gate is not None and gate.buffer is not None:
                if len(gate.buffer) >= self._hold_limit:
                    conn.cut()  # its read is taking too long; it will resume from scratch
                    gate.buffer.clear()
                elif conn.is_open:
                    gate.buffer.append((epoch, seq, frame, key))
                continue
            if held_only:
                continue
            if gate is not None and seq is not None:
                assert gate.floor is not None
                if not _beyond(epoch, seq, gate.floor):
                    continue
                self._drop_gate(room, conn)  # past its read: from now on it is like the others
            if key is None:
                conn.send_shared(frame)
            else:
                conn.send_coalesced(key, frame)

    def _drop_gate(self, room: str, conn: Connection) -> None:
        gates = self._gates.get(room)
        if gates is not None and gates.pop(conn, None) is not None and not gates:
            del self._gates[room]

    # -- gap recovery -------------------------------------------------------------------------------

    def on_resubscribed(self, rooms: frozenset[str]) -> None:
        """Called by the broker after it re-subscribed `rooms` following a lost connection:
        events published meanwhile were not delivered, so recover each room from history."""
        for room in rooms:
            last = self._last.get(room)
            if last is not None and room not in self._recovering:
                self._recover(room, last, [])

    def _recover(self, room: str, last: Position, held: list[dict[str, Any]]) -> bool:
        """Start recovering `room` from `last`, holding its incoming events in `held`."""
        if self._history is None:
            log.warning("room %s: events after seq %d may be missing (no history attached)", room, last[1])
            return False
        self._recovering[room] = held
        self._spawn(self._run_recovery(room, last, held))
        return True

    async def _run_recovery(self, room: str, last: Position, held: list[dict[str, Any]]) -> None:
        assert self._history is not None and self._snapshot is not None
        caught_up = await self._history.catch_up(room, last, self._snapshot,
                                                 lambda: self._recovering.get(room) is held)
        if caught_up is None or self._recovering.get(room) is not held:
            return  # the room emptied meanwhile
        del self._recovering[room]
        frames, self._last[room] = caught_up
        members = self._members[room]
        for frame in frames:
            self._fanout(room, members, frame, frame.event.get("epoch"), frame.event.get("seq"))
        for event in held:
            self.dispatch(room, event)  # drops what the read had; may detect a new gap

    async def _refill(self, room: str, conn: Connection, gate: _Gate, since: Position) -> None:
        """A held member whose buffer skips ahead of its read: read what it missed, release again."""
        assert self._history is not None and self._snapshot is not None
        caught_up = await self._history.catch_up(room, since, self._snapshot,
                                                 lambda: self._gates.get(room, {}).get(conn) is gate)
        if caught_up is not None and self._gates.get(room, {}).get(conn) is gate:
            self.release(room, conn, *caught_up)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _beyond(epoch: Any, seq: int, position: Position) -> bool:
    """True if an event (epoch, seq) comes after `position`; another epoch always does."""
    return epoch != position[0] or seq > position[1]
