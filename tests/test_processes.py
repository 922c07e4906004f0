"""Several real server processes on one Valkey (`python -m server serve` subprocesses): delivery
across processes, per-room subscriptions, viewer counts, and SIGTERM losing nothing acknowledged."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest
from websockets.asyncio.client import connect

from server import keys
from tests.conftest import wait_until



@pytest.fixture
async def two_processes(start_process, valkey_url):
    return await asyncio.gather(*(start_process(REDIS_URL=valkey_url, GIFTCAST_VIEWERS_INTERVAL_S="0.2")
                                  for _ in range(2)))


async def numsub(redis, room: str) -> int:
    [(_, count)] = await redis.pubsub_shardnumsub(keys.room_channel(room))
    return count


async def test_a_gift_sent_on_one_process_reaches_viewers_on_both_in_order(open_room, two_processes, open_client):
    a, b = two_processes
    sender = await open_client(a, "bob")
    on_a, on_b = await open_client(a, "carol"), await open_client(b, "dave")
    seqs = [(await sender.gift())["receipt"]["seq"] for _ in range(20)]
    for viewer in (on_a, on_b):
        events = await viewer.events_until(seqs[-1])
        assert [e["seq"] for e in events] == seqs
        assert {e["from"] for e in events} == {"bob"}


async def test_a_process_subscribes_only_the_rooms_it_has_viewers_in(open_room, two_processes, open_client, redis):
    a, b = two_processes
    await open_client(a, "carol", join="alice")
    await open_client(a, "carol", join="erin")
    leaving = await open_client(b, "dave", join="alice")
    assert (await numsub(redis, "alice"), await numsub(redis, "erin")) == (2, 1)

    await leaving.request(t="leave", room="alice")
    await wait_until(lambda: _numsub_is(redis, "alice", 1))
    channels = await redis.pubsub_shardchannels("room:*")
    assert sorted(channels) == sorted(keys.room_channel(r).encode() for r in ("alice", "erin"))


async def test_viewers_on_every_process_are_counted(open_room, two_processes, open_client):
    a, b = two_processes
    watcher = await open_client(a, "carol")
    await open_client(b, "dave")
    await open_client(b, "erin")
    async with asyncio.timeout(10):
        while (await watcher.next_event("viewers"))["count"] != 3:
            pass


async def test_sigterm_finishes_gifts_in_flight_and_loses_no_acknowledged_gift(open_room, start_process, valkey_url,
                                                                                 open_client, redis):
    server = await start_process(REDIS_URL=valkey_url, GIFTCAST_GIFT_RATE_PER_S="0")  # gifts as fast as they go
    senders = [await open_client(server, "bob") for _ in range(4)]
    acked: set[str] = set()

    async def keep_gifting(sender) -> int | None:
        """Up to 8 gifts in flight, until the server closes the connection; its close code."""
        async def one() -> None:
            while True:
                key = uuid.uuid4().hex
                try:
                    reply = await sender.gift(key=key)
                except Exception:
                    return  # closed: this one was never answered
                assert reply["t"] == "ack", reply
                acked.add(key)

        await asyncio.gather(*(one() for _ in range(8)))
        return sender.ws.close_code

    gifting = [asyncio.create_task(keep_gifting(sender)) for sender in senders]
    await wait_until(lambda: len(acked) >= 40, timeout=20)
    server.proc.send_signal(signal.SIGTERM)
    close_codes = await asyncio.gather(*gifting)
    with pytest.raises(OSError):  # it no longer accepts connections
        await connect(server.ws_url)
    assert await server.wait() in (0, -signal.SIGTERM)

    assert close_codes == [1012] * 4
    ledger = await redis.xrange(keys.ledger("bob"))
    applied = {fields[b"key"].decode() for _, fields in ledger if fields[b"kind"] == b"gift_sent"}
    assert applied == acked  # every acknowledged gift is booked, and nothing unanswered was applied
    assert (await open_room.wallets.balances("bob")).coins == 10_000 - len(acked)


async def _numsub_is(redis, room: str, expected: int) -> bool:
    return await numsub(redis, room) == expected
