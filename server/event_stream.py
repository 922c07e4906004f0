"""The integrators' read-only event WebSocket (`/v1/integrations/events`, docs/events.md).

It streams one room's events as webhooks get them (server/hook_events.py plans both: the room
events, plus `goal_reached` and `gap`), after a position the client gives (`?since=SEQ`, the last
seq it processed; none: from now). Opening it needs a `creator` or `overlay` token of that room
(`?room=`, default the token's user); it takes no frames, so it can never move money.

How one stream starts (a task spawned at the handshake):

1. Read the room's head. Without `since` the cursor state comes from the live hash; with it, from
   the history before `since` (`hook_events.state_at`).
2. Catch up from the history in pages of `PAGE`, waiting for the client to take each page before
   reading the next, until a page comes back short: the cursor is close to the head.
3. The seam: join the room in the hub with a hold (`RoomHub.join(hold=True)`), read the rest of
   the history atomically with the room's position, and `release` it: the hub queues that rest,
   then the live events held meanwhile beyond it, and from then on every live event, each once.

The hub sees a `_Member` standing in for the connection: every event it would send goes through
the same planner as the history's, and only then to the client's `Connection` (its bounded
outbox cuts a slow client with 4008). A hub `reset` (events lost beyond recovery) becomes a `gap`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisClusterException, RedisError

from server import keys
from server.auth import USER_ID, Principal
from server.frames import SharedFrame
from server.errors import Forbidden, GiftcastError, InvalidField
from server.hook_events import EVENT_TYPES, HookState, history_entry, is_live_start, plan_batch, state_at

if TYPE_CHECKING:
    from server.connection import Connection
    from server.services import Services

__all__ = ["EventStream", "PAGE", "stream_request"]

log = logging.getLogger("giftcast.events")

PAGE = 200  # history entries per catch-up read
DRAIN_POLL_S = 0.02  # how often a catch-up checks whether the client has taken its last page
CLOSE_POLICY = 1008  # `since` is ahead of the room
CLOSE_INTERNAL_ERROR = 1011  # the stream could not start (storage unavailable): reconnect
_EVERY = frozenset(EVENT_TYPES)
_MAX_SINCE_DIGITS = 18


def stream_request(principal: Principal, query: dict[str, str]) -> tuple[str, int | None]:
    """The room and `since` position a handshake asks for; raises to refuse it."""
    if principal.role not in ("creator", "overlay"):
        raise Forbidden("the event stream needs a creator or overlay token")
    room = query.get("room", principal.user_id)
    if not USER_ID.fullmatch(room):
        raise InvalidField("room must be 1-64 characters of A-Z a-z 0-9 _ -")
    if room != principal.user_id:
        raise Forbidden("a token may only stream its own creator's room")
    raw = query.get("since")
    if raw is None:
        return room, None
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_SINCE_DIGITS:
        raise InvalidField("since must be the seq of the last event processed: a non-negative integer")
    return room, int(raw)


class EventStream:
    """One event WebSocket: the transport's handler (it answers any frame with `forbidden`)."""

    frame_bucket = None  # it takes no frames: the connection's own frame rate is limit enough

    def __init__(self, services: Services, principal: Principal, connection: Connection,
                 query: dict[str, str]) -> None:
        self.room, since = stream_request(principal, query)
        self._services = services
        self.connection = connection
        self._member = _Member(self)
        self.state = HookState(0, 0, 0)  # the planner's cursor: last seq sent
        self._task = asyncio.get_running_loop().create_task(self._start(since), name=f"events-{self.room}")

    async def on_message(self, message: bytes | str) -> None:
        refusal = Forbidden("the event stream is read-only: it takes no frames")
        self.connection.send({"t": "error", "id": None, **refusal.to_wire()})

    def on_close(self) -> None:
        self._task.cancel()
        self._services.hub.leave_all(self._member)
        self._services.connection_closed(self.connection)

    # -- planning: every event the client gets passes here, in seq order -------------------------

    def forward(self, seq: int, event: dict[str, Any], frame: SharedFrame | None = None) -> None:
        """Send room event `event` (at `seq`) and what the planner derives with it."""
        batch = plan_batch(self.state, [(seq, event)], _EVERY)
        self.state = batch.state
        for planned in batch.events:
            if planned is event and frame is not None:
                self.connection.send_shared(frame)  # encoded once for every viewer of the room
            else:
                self.connection.send(planned)

    def reset(self, snapshot: dict[str, Any]) -> None:
        """The hub lost events it could not read back: tell the client, go on from `snapshot`."""
        if snapshot["seq"] > self.state.seq:
            self.connection.send({"t": "gap", "room": self.room, "from_seq": self.state.seq + 1,
                                  "to_seq": snapshot["seq"]})
        self.state = HookState(snapshot["seq"], snapshot["live_diamonds"], snapshot["goal"])

    # -- start: history, then the seam with the hub's live events --------------------------------------

    async def _start(self, since: int | None) -> None:
        try:
            if await self._begin(since) and await self._read_history():
                await self._join_live()
        except GiftcastError as exc:  # from the hub: subscription not confirmed
            log.warning("event stream of %s could not start: %s", self.room, exc.code)
            self.connection.close(CLOSE_INTERNAL_ERROR, exc.code)
        except (RedisError, RedisClusterException, OSError):
            log.warning("event stream of %s could not read the room", self.room, exc_info=True)
            self.connection.close(CLOSE_INTERNAL_ERROR, "storage unavailable")
        except Exception:  # a bug: the client reconnects and resumes; nobody else waits for this task
            log.exception("event stream of %s failed", self.room)
            self.connection.close(CLOSE_INTERNAL_ERROR, "internal error")

    async def _begin(self, since: int | None) -> bool:
        """Set the cursor at `since` (None: the room's head) and send `ready`; False if refused."""
        fields = await self._services.redis.hmget(keys.live(self.room), ["seq", "epoch", "diamonds", "goal"])
        head, epoch, diamonds, goal = int(fields[0] or 0), (fields[1] or b"").decode(), fields[2], fields[3]
        if since is not None and since > head:
            error = InvalidField(f"since {since} is ahead of the room's last event ({head})")
            self.connection.send({"t": "error", "id": None, **error.to_wire()})
            self.connection.close(CLOSE_POLICY, "since is ahead of the room")
            return False
        if since is None:
            self.state = HookState(head, int(diamonds or 0), int(goal or 0))
        else:
            self.state = state_at(since, await self._entries_back_to_live_start(since))
        self.connection.send({"t": "ready", "room": self.room, "epoch": epoch, "since": self.state.seq, "head": head})
        return True

    async def _read_history(self) -> bool:
        """Send the history after the cursor a page at a time, as the client takes it, until a
        page comes back short; False if the client left meanwhile."""
        while self.connection.is_open:
            page = await self._services.redis.xrange(
                keys.live_history(self.room), min=f"({self.state.seq}-0", max="+", count=PAGE)
            for entry_id, fields in page:
                self.forward(*history_entry(entry_id, fields))
            if len(page) < PAGE:
                break
            await self._drained()
        return self.connection.is_open

    async def _join_live(self) -> None:
        """The seam: hold the room's live events, read the rest of the history with the room's
        position in one transaction, and let the hub send that rest, then what it held beyond it."""
        hub = self._services.hub
        await hub.join(self.room, self._member, hold=True)
        async with self._services.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.live(self.room), ["epoch", "seq"])
            pipe.xrange(keys.live_history(self.room), min=f"({self.state.seq}-0", max="+")
            (epoch, head), rest = await pipe.execute()
        replay = [SharedFrame(history_entry(entry_id, fields)[1]) for entry_id, fields in rest]
        hub.release(self.room, self._member, replay, ((epoch or b"").decode(), int(head or 0)))

    async def _entries_back_to_live_start(self, since: int) -> list[tuple[int, dict[str, Any]]]:
        """The history at or before `since`, newest first, back to the latest live start."""
        entries: list[tuple[int, dict[str, Any]]] = []
        upper = f"{since}-0"
        while True:
            page = await self._services.redis.xrevrange(keys.live_history(self.room), max=upper, min="-", count=PAGE)
            entries.extend(history_entry(entry_id, fields) for entry_id, fields in page)
            if len(page) < PAGE or any(is_live_start(event) for _, event in entries[-len(page):]):
                return entries
            upper = f"({entries[-1][0]}-0"

    async def _drained(self) -> None:
        """Wait until the client has taken most of what was sent, so a catch-up never fills the
        outbox (polled: `Connection` has no drain signal; only this stream's own task waits)."""
        low_water = self._services.settings.outbox_limit_bytes // 4
        while self.connection.is_open and self.connection.buffered_bytes > low_water:
            await asyncio.sleep(DRAIN_POLL_S)


class _Member:
    """What the hub sees of an event stream: the `Connection` methods it calls, with every
    frame planned on its way (room events only: viewer counts are not events)."""

    __slots__ = ("_stream",)

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream

    @property
    def is_open(self) -> bool:
        return self._stream.connection.is_open

    def send_shared(self, frame: SharedFrame) -> None:
        event = frame.event
        if event.get("t") == "reset":
            self._stream.reset(event["snapshot"])
        elif type(event.get("seq")) is int:
            self._stream.forward(event["seq"], event, frame)

    def send_coalesced(self, key: object, frame: SharedFrame) -> None:
        """Viewer counts: not room events, so not streamed."""

    def cut(self) -> None:
        self._stream.connection.cut()
