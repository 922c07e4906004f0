"""ViewerCounter: each room's viewer count across every process serving it.

Every `interval_s`, a process reports the local member count of each of its rooms to
`keys.room_viewers(room)` (`report_viewers.lua`: one field per process, with a deadline of
three intervals, so the viewers of a process that died vanish within that) and gets the room's
total back, all rooms in one pipeline. When a room's total differs from the one last sent to
its members, they get `{"t": "viewers", "room", "count"}` through `RoomHub.dispatch_latest`:
at most one per interval, and a slow reader's unsent count is replaced by the newer one.

Portable to Redis 7.0: deadlines are kept in the values, not with hash-field expiry
(HSETEX/HEXPIRE exist only in Valkey 9 / Redis 7.4+).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from server import keys
from server.hub import RoomHub
from server.scripts import Scripts
from server.tasks import cancel_and_wait

__all__ = ["ViewerCounter"]

log = logging.getLogger(__name__)

READ_ONLY = -1  # a "count" that reports nothing: report_viewers.lua only returns the total


class ViewerCounter:
    def __init__(self, client: aioredis.Redis, scripts: Scripts, hub: RoomHub, *, interval_s: float) -> None:
        self.process_id = secrets.token_hex(8)  # one field per process start
        self._client = client
        self._scripts = scripts
        self._hub = hub
        self._interval_s = interval_s
        self._ttl_ms = max(1, int(interval_s * 3000))
        self._reported: dict[str, int] = {}  # room -> the local count in our last report
        self._totals: dict[str, int] = {}  # room -> the room-wide total that report returned
        self._sent: dict[str, int] = {}  # room -> the count last sent to its members
        self._first: dict[str, asyncio.Future[dict[str, int]]] = {}  # room -> its first report
        self._task: asyncio.Task[None] | None = None

    async def count(self, room: str) -> int:
        """The room-wide viewer count as best known now: the last total, corrected by how the
        local count moved since it was reported (a joiner counts itself at once). A room this
        process has not reported yet is reported first (once, however many ask at a time)."""
        if room not in self._totals:
            if not self._hub.members(room):
                return (await self._report({room: READ_ONLY}))[room]
            first = self._first.get(room)
            if first is None:
                first = self._first[room] = asyncio.ensure_future(self._report({room: self._hub.members(room)}))
                first.add_done_callback(lambda _: self._first.pop(room, None))
            await asyncio.shield(first)
        local = self._hub.members(room)
        total = self._totals.get(room)
        if total is None:
            return local
        return max(local, total - self._reported[room] + local)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="giftcast-viewers")

    async def stop(self) -> None:
        """Stop reporting and withdraw this process's counts (best effort, 1 s)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._reported:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._report({room: 0 for room in self._reported})

    async def report_once(self) -> None:
        """Report every local room (and withdraw the ones left since); notify changed totals."""
        counts = {room: self._hub.members(room) for room in self._hub.local_rooms() | self._reported.keys()}
        if not counts:
            return
        totals = await self._report(counts)
        for room, total in totals.items():
            if self._hub.members(room) and self._sent.get(room) != total:
                self._sent[room] = total
                self._hub.dispatch_latest(room, {"t": "viewers", "room": room, "count": total})

    async def _report(self, counts: dict[str, int]) -> dict[str, int]:
        """Report local `counts` (0 withdraws, READ_ONLY reads); the rooms' totals over all processes."""
        calls = [([keys.room_viewers(room)], [self.process_id, count, self._ttl_ms]) for room, count in counts.items()]
        if isinstance(self._client, RedisCluster):
            # Rooms live in many slots and a cluster client cannot pipeline scripts across them.
            replies = await asyncio.gather(*(self._scripts.report_viewers(keys=k, args=a) for k, a in calls))
        else:
            async with self._client.pipeline(transaction=False) as pipe:
                for k, a in calls:
                    await self._scripts.report_viewers(keys=k, args=a, client=pipe)
                replies = await pipe.execute()
        totals = {room: int(total) for room, total in zip(counts, replies, strict=True)}
        for room, count in counts.items():
            if count > 0:
                self._reported[room], self._totals[room] = count, totals[room]
            elif count == 0:
                for known in (self._reported, self._totals, self._sent):
                    known.pop(room, None)
        return totals

    async def _run(self) -> None:
        while True:
            try:
                await self.report_once()
            except (RedisError, OSError) as exc:
                log.warning("viewer count report failed: %s", exc)
            except Exception:
                log.exception("viewer count report failed")
            await asyncio.sleep(self._interval_s)
