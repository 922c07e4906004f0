"""Flusher (server/flusher.py): one loop callback flushes every registered connection."""

from __future__ import annotations

import asyncio

from server.flusher import CHUNK, Flusher
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


class _Recorder:
    """A connection that records the loop time of each of its flushes."""

    def __init__(self, name: str, log: list[tuple[str, float]]) -> None:
        self.name, self.log = name, log

    def flush(self) -> None:
        self.log.append((self.name, asyncio.get_running_loop().time()))


async def test_after_a_quiet_spell_a_frame_is_flushed_on_the_next_tick_not_after_the_window() -> None:
    loop = asyncio.get_running_loop()
    flushed: list[tuple[str, float]] = []
    flusher = Flusher(loop, delay_s=30.0)
    added_at = loop.time()
    flusher.add(_Recorder("a", flushed))
    await wait_until(lambda: flusher.runs == 1)
    assert flushed[0][1] - added_at < 30.0


async def test_frames_added_within_the_window_after_a_flush_go_out_together_when_it_ends() -> None:
    loop = asyncio.get_running_loop()
    flushed: list[tuple[str, float]] = []
    flusher = Flusher(loop, delay_s=0.2)
    flusher.add(_Recorder("a", flushed))
    await wait_until(lambda: flusher.runs == 1)
    flusher.add(_Recorder("b", flushed))
    await asyncio.sleep(0)
    flusher.add(_Recorder("c", flushed))
    await wait_until(lambda: flusher.runs == 2)
    (_, first), (b, second), (c, third) = flushed
    assert (b, c) == ("b", "c") and second == third  # one callback wrote both
    assert second - first >= 0.2 - 0.01  # not before the window since the last flush ended


async def test_without_a_window_every_flush_runs_on_the_next_tick() -> None:
    flushed: list[tuple[str, float]] = []
    flusher = Flusher(asyncio.get_running_loop())
    for round_ in range(3):
        flusher.add(_Recorder(str(round_), flushed))
        await asyncio.sleep(0)  # the flush was scheduled before this task's wake-up
        assert flusher.runs == round_ + 1


async def test_a_flush_of_many_connections_lets_the_loop_run_between_chunks() -> None:
    loop = asyncio.get_running_loop()
    order: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def flush(self) -> None:
            order.append(self.name)

    flusher = Flusher(loop)
    for i in range(CHUNK + 3):
        flusher.add(Named(str(i)))
    loop.call_soon(order.append, "other work")  # e.g. a socket read, queued behind the flush
    await wait_until(lambda: len(order) == CHUNK + 4)
    assert order.index("other work") == CHUNK  # after the first chunk, before the rest
    assert [n for n in order if n != "other work"] == [str(i) for i in range(CHUNK + 3)]
    assert flusher.runs == 1  # one flush, in two chunks
