"""Room history reads (server/history.py): what a view can resume, pure; shared reads on a real Valkey."""

from __future__ import annotations

import asyncio

import pytest

from server import keys
from server.codec import Since
from server.frames import SharedFrame
from server.history import HistoryView, RoomHistory
from tests.conftest import wait_until


def view(seqs: range, head: int, *, epoch: str = "e1", max_events: int = 100) -> HistoryView:
    return HistoryView(epoch, head, tuple(seqs), tuple(SharedFrame({"seq": s}) for s in seqs), max_events)


def seqs_after(history: HistoryView, epoch: str, seq: int) -> list[int] | None:
    frames = history.after(Since(epoch, seq))
    return None if frames is None else [frame.event["seq"] for frame in frames]


def test_a_view_gives_exactly_the_events_after_a_position_it_reaches_back_to():
    history = view(range(5, 11), head=10)
    assert seqs_after(history, "e1", 4) == [5, 6, 7, 8, 9, 10]
    assert seqs_after(history, "e1", 7) == [8, 9, 10]
    assert seqs_after(history, "e1", 10) == []


@pytest.mark.parametrize("epoch,seq", [
    pytest.param("e0", 7, id="another-epoch"),
    pytest.param("e1", 3, id="trimmed-past-it"),
    pytest.param("e1", 11, id="ahead-of-the-head"),
])
def test_a_view_cannot_resume_positions_it_does_not_continue(epoch, seq):
    assert seqs_after(view(range(5, 11), head=10), epoch, seq) is None


def test_a_view_refuses_to_replay_more_than_max_events():
    history = view(range(1, 11), head=10, max_events=5)
    assert seqs_after(history, "e1", 5) == [6, 7, 8, 9, 10]
    assert seqs_after(history, "e1", 4) is None


def test_an_empty_history_only_resumes_the_head():
    assert seqs_after(view(range(0), head=10), "e1", 10) == []
    assert seqs_after(view(range(0), head=10), "e1", 9) is None


@pytest.fixture
async def room_with_history(open_room):
    """alice's room, closed, with 10 events in its history (seqs 1..10: open, close, open, ...)."""
    for n in range(9):
        await open_room.lives.set_state("alice", "closed" if n % 2 == 0 else "open")
    return open_room


async def test_concurrent_reads_of_a_room_share_one_redis_read(room_with_history):
    history = RoomHistory(room_with_history.redis, max_events=100)
    views = await asyncio.gather(*(history.read("alice", after) for after in (2, 7, 5, 9)))
    assert history.reads == 1
    assert len({id(v) for v in views}) == 1
    assert views[0].seqs == tuple(range(3, 11)) and views[0].head == 10  # from the lowest position


async def test_a_read_asked_for_after_one_was_sent_gets_a_later_read(room_with_history):
    history = RoomHistory(room_with_history.redis, max_events=100)
    first = asyncio.ensure_future(history.read("alice", 5))
    await wait_until(lambda: history.reads == 1)  # sent (or about to be)
    await room_with_history.lives.set_state("alice", "open")  # seq 11
    second = await history.read("alice", 5)
    assert (await first).head in (10, 11)
    assert second.head == 11 and history.reads == 2


async def test_reads_of_different_rooms_are_not_shared(room_with_history):
    history = RoomHistory(room_with_history.redis, max_events=100)
    await asyncio.gather(history.read("alice", 0), history.read("nobody", 0))
    assert history.reads == 2


async def test_an_undecodable_entry_is_a_hole_no_one_is_resumed_across(room_with_history):
    redis = room_with_history.redis
    await redis.xadd(keys.live_history("alice"), {"e": b"\xc1"}, id="11-0")
    await redis.hset(keys.live("alice"), "seq", 11)
    await room_with_history.lives.set_state("alice", "open")  # seq 12, a good entry again
    epoch = (await room_with_history.lives.snapshot("alice"))["epoch"]
    current = await RoomHistory(redis, max_events=100).read("alice", 0)
    assert current.seqs == (12,)
    assert seqs_after(current, epoch, 5) is None
    assert seqs_after(current, epoch, 11) == [12]
