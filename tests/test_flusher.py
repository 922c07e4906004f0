"""Flusher (server/flusher.py): one loop callback flushes every registered connection."""

from __future__ import annotations

import asyncio

from server.flusher import Flusher
from tests.conftest import wait_until


async def test_a_connection_that_fails_to_flush_does_not_stop_the_others() -> None:
    class Broken:
        def flush(self) -> None:
            raise RuntimeError("boom")

    class Counting:
        flushed = 0

        def flush(self) -> None:
            self.flushed += 1

    flusher = Flusher(asyncio.get_running_loop())
    healthy = Counting()
    flusher.add(Broken())
    flusher.add(healthy)
    await wait_until(lambda: flusher.runs == 1)
    assert healthy.flushed == 1


async def test_a_window_flushes_every_connection_added_within_it_together() -> None:
    flushed: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def flush(self) -> None:
            flushed.append(self.name)

    flusher = Flusher(asyncio.get_running_loop(), delay_s=0.2)
    flusher.add(Named("a"))
    await asyncio.sleep(0)  # a later tick, well inside the window
    flusher.add(Named("b"))
    await wait_until(lambda: flusher.runs == 1)
    assert flushed == ["a", "b"]
