"""ScriptPipe (server/script_pipe.py) against the session's real Valkey, and against a silent peer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from server.script_pipe import ScriptPipe

COUNTER = """
local n = redis.call('INCR', KEYS[1])
if ARGV[1] == 'fail' then return redis.error_reply('BAD_INPUT no') end
return {n, ARGV[1], KEYS[1]}
"""


@pytest.fixture
async def pipe(valkey_url: str, redis: aioredis.Redis) -> AsyncIterator[ScriptPipe]:  # redis: flushed
    pipe = ScriptPipe.for_url(valkey_url, COUNTER)
    assert pipe is not None
    yield pipe
    await pipe.aclose()


async def test_a_call_returns_what_redis_py_returns_for_the_same_script(pipe, redis: aioredis.Redis) -> None:
    through_pipe = await pipe(keys=["n"], args=["rose"])
    through_redis_py = await redis.register_script(COUNTER)(keys=["n"], args=["rose"])
    assert through_pipe == [1, b"rose", b"n"]
    assert through_redis_py == [2, b"rose", b"n"]


async def test_calls_of_one_tick_get_their_own_replies_in_order(pipe) -> None:
    replies = await asyncio.gather(*(pipe(keys=[f"n{i % 3}"], args=[str(i)]) for i in range(30)))
    assert [reply[1] for reply in replies] == [str(i).encode() for i in range(30)]
    assert [reply[0] for reply in replies] == [i // 3 + 1 for i in range(30)]


async def test_an_error_reply_raises_and_later_calls_still_match_their_replies(pipe) -> None:
    failing, after = await asyncio.gather(pipe(keys=["n"], args=["fail"]), pipe(keys=["n"], args=["ok"]),
                                          return_exceptions=True)
    assert isinstance(failing, ResponseError) and str(failing).startswith("BAD_INPUT")
    assert after == [2, b"ok", b"n"]


async def test_an_emptied_script_cache_loads_the_script_and_runs_the_call_once(pipe, redis) -> None:
    await pipe(keys=["n"], args=["first"])
    await redis.script_flush()
    assert await pipe(keys=["n"], args=["again"]) == [2, b"again", b"n"]
    assert int(await redis.get("n")) == 2


async def test_a_killed_connection_is_replaced_by_the_next_call(pipe, redis) -> None:
    await pipe(keys=["n"], args=["a"])
    [mine] = [c for c in await redis.client_list() if c.get("name") == "giftcast"]
    await redis.client_kill_filter(_id=mine["id"])
    replies = []
    for _ in range(3):  # a call may still go to the dying socket before its EOF arrives
        try:
            replies.append(await pipe(keys=["n"], args=["b"]))
            break
        except RedisConnectionError:
            continue
    assert replies and replies[0][1] == b"b"


class SilentPeer:
    """A TCP server that answers the pipe's connection set-up, then never again."""

    def __init__(self) -> None:
        self.connections: list[asyncio.StreamWriter] = []
        self.connected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer)
        self.connected.set()
        await reader.read(1024)  # CLIENT SETNAME
        writer.write(b"+OK\r\n")
        while await reader.read(65536):
            pass
        writer.close()


@pytest.fixture
async def silent_pipe() -> AsyncIterator[tuple[ScriptPipe, SilentPeer]]:
    peer = SilentPeer()
    server = await asyncio.start_server(peer.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = ScriptPipe("127.0.0.1", port, COUNTER, timeout_s=0.5)
    yield pipe, peer
    await pipe.aclose()
    for writer in peer.connections:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_calls_in_flight_fail_with_a_connection_error_when_the_connection_drops(silent_pipe) -> None:
    pipe, peer = silent_pipe
    calls = [asyncio.ensure_future(pipe(keys=["n"], args=[str(i)])) for i in range(3)]
    async with asyncio.timeout(5):
        await peer.connected.wait()
        peer.connections[0].close()
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, RedisConnectionError) for result in results)


async def test_a_call_unanswered_past_the_timeout_fails_with_a_connection_error(silent_pipe) -> None:
    pipe, _ = silent_pipe
    async with asyncio.timeout(5):
        with pytest.raises(RedisConnectionError):
            await pipe(keys=["n"], args=["x"])


def test_only_plain_redis_urls_get_a_pipe() -> None:
    assert ScriptPipe.for_url("rediss://127.0.0.1:6380", COUNTER) is None
    assert ScriptPipe.for_url("unix:///tmp/redis.sock", COUNTER) is None
    assert ScriptPipe.for_url("redis://user:p%40ss@127.0.0.1:6380/2", COUNTER) is not None
