"""RoomHistory: reads a room's recent events back from `keys.live_history`, for resumes and for
gap recovery after a pub/sub reconnect; identical reads are shared.

The history is a stream whose entry ids are the events' `seq` (`SEQ-0`), written by the same
script that publishes each event, so "the events after seq S" is a range read. One read
returns a `HistoryView`: the room's epoch and head seq and its newest events (at most
`max_events` + 1), read in one MULTI so they agree. `HistoryView.after(since)` answers, purely,
whether that view covers everything after a client's position, and with which frames.

Sharing (a reconnect storm must not melt Redis): at most one read per room is in flight. The
requests that arrive meanwhile wait together for the next read, which starts from the lowest
position among them and serves them all, with the same `SharedFrame`s (each event is encoded
once per wire format however many clients replay it). A request is never served by a read
issued before it arrived: its caller's live events are being buffered from that moment, and
only a later read is sure to reach them.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server import keys
from server.codec import Since
from server.frames import SharedFrame
from server.tasks import cancel_and_wait

__all__ = ["HistoryView", "Position", "RoomHistory"]

log = logging.getLogger(__name__)

Position = tuple[Any, int]  # (epoch, seq) of the last event a member has


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryView:
    """A room's history as one read saw it: `seqs[i]` is the seq of `frames[i]`, ascending."""

    epoch: str
    head: int  # the room's seq at the time of the read: the last event that exists
    seqs: tuple[int, ...]
    frames: tuple[SharedFrame, ...]
    max_events: int

    def after(self, since: Since) -> tuple[SharedFrame, ...] | None:
        """The events after `since`, exactly and in order, or None if this view cannot give
        them all: another epoch, a position ahead of the head, more than `max_events` behind,
        or history trimmed past it."""
        if since.epoch != self.epoch or since.seq > self.head:
            return None
        if since.seq == self.head:
            return ()
        if self.head - since.seq > self.max_events or not self.seqs or self.seqs[0] > since.seq + 1:
            return None
        start = bisect.bisect_right(self.seqs, since.seq)
        return self.frames[start:]


class _Batch:
    __slots__ = ("after", "future")

    def __init__(self, after: int, future: asyncio.Future[HistoryView]) -> None:
        self.after = after
        self.future = future


class RoomHistory:
    """Shared history reads, one in flight per room. Use from the event loop only."""

    def __init__(self, client: aioredis.Redis, *, max_events: int) -> None:
        self._client = client
        self._max_events = max_events
        self._waiting: dict[str, _Batch] = {}  # per room: the next read, not sent yet
        self._reading: dict[str, asyncio.Task[None]] = {}  # per room: the task sending reads
        self.reads = 0  # history reads sent to Redis (for tests and metrics)

    async def read(self, room: str, after: int) -> HistoryView:
        """A view of `room`'s history including the events after seq `after` if it still has
        them. Raises what the Redis read raised (RedisError)."""
        batch = self._waiting.get(room)
        if batch is None:
            batch = self._waiting[room] = _Batch(after, asyncio.get_running_loop().create_future())
            if room not in self._reading:
                self._reading[room] = asyncio.create_task(self._serve(room), name=f"history-{room}")
        else:
            batch.after = min(batch.after, after)
        # Shielded: one waiter giving up must not cancel the read the others wait for.
        return await asyncio.shield(batch.future)

    async def catch_up(self, room: str, since: Position, snapshot: Callable[[str], Awaitable[dict[str, Any]]],
                       wanted: Callable[[], bool]) -> tuple[tuple[SharedFrame, ...], Position] | None:
        """What a member at `since` missed: the events after it and the position they reach or,
        when the history no longer has them all, one `reset` frame carrying `snapshot(room)` and
        its position. Redis errors are retried with backoff while `wanted()`; None once not."""
        delay = 0.05
        while wanted():
            try:
                view = await self.read(room, since[1])
                frames = view.after(Since(since[0], since[1]))
                if frames is not None:
                    log.warning("room %s: caught up %d missed events after seq %d", room, len(frames), since[1])
                    return frames, (view.epoch, view.head)
                fresh = await snapshot(room)
            except (RedisError, OSError) as exc:
                log.warning("room %s: reading missed events failed (%s); retrying", room, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            log.warning("room %s: events after seq %d are gone from history; sending a reset", room, since[1])
            return (SharedFrame({"t": "reset", "room": room, "snapshot": fresh}),), (fresh["epoch"], fresh["seq"])
        return None

    async def aclose(self) -> None:
        """Cancel reads in flight; their waiters get CancelledError."""
        await cancel_and_wait(*self._reading.values())

    async def _serve(self, room: str) -> None:
        try:
            while (batch := self._waiting.pop(room, None)) is not None:
                try:
                    view = await self._fetch(room, batch.after)
                except asyncio.CancelledError:
                    batch.future.cancel()
                    raise
                except Exception as exc:
                    batch.future.set_exception(exc)
                    batch.future.exception()  # retrieved: nobody may be waiting any more
                else:
                    batch.future.set_result(view)
        finally:
            self._reading.pop(room, None)
            leftover = self._waiting.pop(room, None)
            if leftover is not None:  # only when cancelled between two reads
                leftover.future.cancel()

    async def _fetch(self, room: str, after: int) -> HistoryView:
        self.reads += 1
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.live(room), ["epoch", "seq"])
            # Newest first, back to seq after+1, one more than a resume may replay: enough to
            # tell "reaches back" from "trimmed" for every waiter within max_events of the head.
            pipe.xrevrange(keys.live_history(room), "+", f"{after + 1}-0", count=self._max_events + 1)
            (epoch, head), entries = await pipe.execute()
        seqs: list[int] = []
        frames: list[SharedFrame] = []
        for entry_id, fields in reversed(entries):
            try:
                event = msgpack.unpackb(fields[b"e"])
            except Exception:
                log.error("undecodable history entry %s in room %s", entry_id, room)
                seqs.clear()  # a hole: the view starts after it, so no one is resumed across it
                frames.clear()
                continue
            seqs.append(int(entry_id.split(b"-", 1)[0]))
            frames.append(SharedFrame(event))
        return HistoryView((epoch or b"").decode(), int(head or 0), tuple(seqs), tuple(frames), self._max_events)
