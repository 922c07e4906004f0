"""StreakSweeper: ends the combo streaks of this process's rooms once their window has passed.

A streak is started and extended by `lua/send_gift.lua` and ended only by `lua/end_streaks.lua`
(through `LiveStore.end_streaks`), which removes each expired streak in the same atomic step that
publishes its `streak_end` event. So any number of processes may sweep the same room at the same
moment, with no coordinator: each streak ends exactly once. Every process sweeps the rooms it has
members in:

- at the deadline: a `gift` event carrying a `streak` (every process in the room receives it)
  arms a timer for that room one window later; the script answers with the time left until the
  room's next open deadline, measured on Redis's clock, and the timer is re-armed to it. The
  processes' own clocks never decide when a streak expires.
- every `streak_sweep_ms`, each local room (a safety net: events missed in a pub/sub gap,
  streaks left open when a room's last viewer left).
- when the live closes, `LiveStore.set_state` ends all the room's streaks itself.

Sweeps never block the hub: the listener only arms timers; sweeps run as tasks, at most
`MAX_CONCURRENT_SWEEPS` at a time (bounding Redis connections). A Redis error is logged and the
next pass retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError

from server.hub import RoomHub
from server.live_store import LiveStore

__all__ = ["StreakSweeper", "MAX_CONCURRENT_SWEEPS"]

log = logging.getLogger(__name__)

MAX_CONCURRENT_SWEEPS = 8


class StreakSweeper:
    def __init__(self, lives: LiveStore, hub: RoomHub, *, window_s: float, interval_s: float) -> None:
        self._lives = lives
        self._hub = hub
        self._window_s = window_s
        self._interval_s = interval_s
        self._timers: dict[str, asyncio.TimerHandle] = {}  # room -> its next deadline sweep
        self._sweeps: dict[str, asyncio.Task[None]] = {}  # room -> the sweep running now
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_SWEEPS)
        self._periodic: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._hub.listeners.append(self.on_event)
        self._periodic = asyncio.create_task(self._sweep_periodically(), name="giftcast-streak-sweeper")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self._hub.listeners.remove(self.on_event)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = [t for t in (self._periodic, *self._sweeps.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def on_event(self, room: str, event: dict[str, Any]) -> None:
        """Hub listener: a streak started or grew, so the room has a deadline one window away."""
        if event.get("streak") is not None:
            self._arm(room, self._window_s)

    def sweep(self, room: str) -> None:
        """End `room`'s expired streaks now (in a task), unless a sweep of it is running."""
        if room in self._sweeps:
            return
        task = asyncio.create_task(self._sweep(room))
        self._sweeps[room] = task
        task.add_done_callback(lambda _: self._sweeps.pop(room, None))

    def _arm(self, room: str, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        timer = self._timers.get(room)
        if timer is not None:
            if timer.when() <= loop.time() + delay_s:
                return  # an earlier sweep re-arms itself for the later deadline
            timer.cancel()
        self._timers[room] = loop.call_later(delay_s, self._fire, room)

    def _fire(self, room: str) -> None:
        self._timers.pop(room, None)
        self.sweep(room)

    async def _sweep(self, room: str) -> None:
        try:
            async with self._slots:
                _, next_ms = await self._lives.end_streaks(room)
                while next_ms == 0:  # more expired streaks than one call ends
                    _, next_ms = await self._lives.end_streaks(room)
        except RedisError as exc:
            log.warning("ending streaks of room %s failed (retried on the next pass): %s", room, exc)
            return
        if next_ms > 0 and self._hub.members(room):
            self._arm(room, next_ms / 1000)

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            for room in self._hub.local_rooms():
                self.sweep(room)
