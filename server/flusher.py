"""Flusher: writes every connection that queued frames, a chunk per loop callback, once per window.

A room event reaches every member's outbox in one `RoomHub.dispatch`; scheduling one callback
per connection for it (`call_soon` or a `call_later` timer each) cost as much CPU as the socket
writes themselves at a few thousand members (benchmarks/RESULTS.md). Instead a connection whose
outbox goes from empty to non-empty registers here once, and one callback writes them all.

Contracts:

- `add(conn)` never awaits; a connection added several times before the flush is flushed once
  per addition (its outbox is empty after the first, so the others are no-ops). Connections
  only add themselves when their outbox was empty, so in practice each appears once.
- `delay_s` (the coalescing window, `settings.coalesce_ms`) is the least time between two
  flushes. An addition after a quiet spell (the last flush began `delay_s` or more ago) is
  flushed on the next loop iteration, so a quiet room pays no added latency; additions arriving
  faster wait for the window to end and go out together, one write per connection. No frame
  waits longer than the window plus the flushes queued before it. `delay_s` 0: every flush runs
  on the next loop iteration (after everything already scheduled for this one).
- Why a least interval rather than a fixed delay: a fixed delay taxed every event of a quiet
  room by the whole window and bought nothing (one event per window is one write either way);
  under load both batch the same, and when a flush takes longer than the window (a big room on a
  busy core) the next one starts right after it, so batches grow with the load by themselves.
- A flush writes at most `CHUNK` connections per loop callback and lets the loop poll its
  sockets before the next chunk. Connections added meanwhile join the end of the same flush, so
  `delay_s` separates the starts of flushes: under sustained load a flush can run on, and a
  connection be written again before the window has passed (its batch then spans one pass over
  the others). Writing each round's connections only, with the next round after the window, was
  tried and not kept (benchmarks/RESULTS.md, "Not done").
  Why: writing a room of 5,000 takes ~20 ms of syscalls; done in one callback it held every
  other step of the gift path (a gift frame read, its script reply, its pub/sub message) for
  that long each, and a gift needs several such steps before its own flush.
- One flusher per event loop and window (`Flusher.for_loop`): the hubs, sessions and tests of
  one loop share it. A connection that fails to write is logged and does not stop the others.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from typing import Protocol

__all__ = ["Flusher"]

log = logging.getLogger(__name__)

CHUNK = 256  # connections written per loop callback (~1 ms of writes)


class _Flushable(Protocol):
    def flush(self) -> None: ...


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, Flusher]] = weakref.WeakKeyDictionary()


class Flusher:
    __slots__ = ("_loop", "_delay_s", "_dirty", "_handle", "_last", "runs")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_s: float = 0.0) -> None:
        self._loop = loop
        self._delay_s = delay_s
        self._dirty: deque[_Flushable] = deque()
        self._handle: asyncio.Handle | None = None
        self._last = float("-inf")  # loop time the last flush began
        self.runs = 0  # callbacks run so far (tests and metrics)

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop, delay_s: float = 0.0) -> Flusher:
        """The flusher shared by every connection of `loop` with this window."""
        by_delay = _BY_LOOP.get(loop)
        if by_delay is None:
            by_delay = _BY_LOOP[loop] = {}
        flusher = by_delay.get(delay_s)
        if flusher is None:
            flusher = by_delay[delay_s] = cls(loop, delay_s)
        return flusher

    def add(self, conn: _Flushable) -> None:
        """Flush `conn` with the others on the next tick, or when the window since the last flush ends."""
        self._dirty.append(conn)
        if self._handle is None:
            wait = self._last + self._delay_s - self._loop.time()
            if wait > 0:
                self._handle = self._loop.call_later(wait, self._run)
            else:
                self._handle = self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._last = self._loop.time()
        self.runs += 1
        self._write_chunk()

    def _write_chunk(self) -> None:
        self._handle = None
        dirty = self._dirty
        for _ in range(min(CHUNK, len(dirty))):
            conn = dirty.popleft()
            try:
                conn.flush()
            except Exception:  # a bug in one connection must not silence the whole room
                log.exception("flushing a WebSocket connection failed")
        if dirty:  # the rest after the loop has polled its sockets: same flush, no new window
            self._handle = self._loop.call_soon(self._write_chunk)
