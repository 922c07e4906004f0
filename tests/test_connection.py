"""Connection (server/connection.py) sending SharedFrames, over real loopback WebSockets."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

import server.connection
from server.connection import CLOSE_TOO_SLOW
from server.flusher import Flusher
from server.frames import SharedFrame
from server.hub import RoomHub
from server.settings import Settings
from tests.conftest import wait_until

JSON = ["giftcast.json.v1"]


async def recv_event(ws: ClientConnection) -> Any:
    async with asyncio.timeout(5):
        message = await ws.recv()
    return json.loads(message) if isinstance(message, str) else msgpack.unpackb(message)


async def test_msgpack_shared_frame_reaches_a_client_as_a_binary_message(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url()) as ws:
        conn = await srv.gateway.accepted.get()
        conn.send_shared(SharedFrame({"t": "gift", "coins": 5, "name": "Zoë"}))
        async with asyncio.timeout(5):
            message = await ws.recv()
    assert isinstance(message, bytes)
    assert msgpack.unpackb(message) == {"t": "gift", "coins": 5, "name": "Zoë"}


async def test_json_shared_frame_reaches_a_client_as_a_text_message(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url(), subprotocols=JSON) as ws:
        conn = await srv.gateway.accepted.get()
        conn.send_shared(SharedFrame({"t": "gift", "coins": 5, "name": "Zoë"}))
        async with asyncio.timeout(5):
            message = await ws.recv()
    assert message == '{"t":"gift","coins":5,"name":"Zoë"}'


async def test_frames_queued_in_one_tick_go_out_in_one_write(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url()) as ws:
        conn = await srv.gateway.accepted.get()
        writes_before = conn.writes
        for i in range(10):
            conn.send({"i": i})
        received = [await recv_event(ws) for _ in range(10)]
        assert received == [{"i": i} for i in range(10)]
        assert conn.writes == writes_before + 1


async def test_coalesce_window_merges_frames_from_several_ticks_after_a_flush(start_ws_server) -> None:
    srv = await start_ws_server(Settings(coalesce_ms=1000))
    async with connect(srv.url()) as ws:
        conn = await srv.gateway.accepted.get()
        conn.send({"i": 0})  # flushes on the next tick and opens a 1 s window
        assert await recv_event(ws) == {"i": 0}
        writes_before = conn.writes
        conn.send({"i": 1})
        await asyncio.sleep(0)  # a later tick, inside the window
        conn.send({"i": 2})
        assert [await recv_event(ws), await recv_event(ws)] == [{"i": 1}, {"i": 2}]
        assert conn.writes == writes_before + 1


async def test_frames_sent_while_the_handshake_runs_arrive_after_it(start_ws_server) -> None:
    class GreetingHandler:
        frame_bucket = None

        def __init__(self, gateway: Any, connection: server.connection.Connection) -> None:
            connection.send({"t": "hello"})  # during open_session: still CONNECTING

        async def on_message(self, message: bytes | str) -> None: ...

        def on_close(self) -> None: ...

    srv = await start_ws_server(handler=GreetingHandler)
    async with connect(srv.url()) as ws:
        assert await recv_event(ws) == {"t": "hello"}


async def test_nothing_is_sent_after_the_close_frame(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url()) as ws:
        conn = await srv.gateway.accepted.get()
        conn.send({"i": 1})
        conn.close(1000, "bye")
        conn.send({"i": 2})  # dropped, silently
        assert await recv_event(ws) == {"i": 1}
        with pytest.raises(ConnectionClosedOK):
            await recv_event(ws)
        assert ws.close_code == 1000
        assert ws.close_reason == "bye"


async def test_stalled_client_is_cut_with_4008_while_a_fast_client_gets_everything(start_ws_server) -> None:
    limit = 64 * 1024
    settings = Settings(outbox_limit_bytes=limit)
    hub = RoomHub(settings)
    srv = await start_ws_server(settings, hub=hub)
    fast = await connect(srv.url(), ping_interval=None)
    fast_conn = await srv.gateway.accepted.get()
    # The stalled client: a tiny receive buffer, and a reader that stops after one message.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    slow = await connect(srv.url(), sock=sock, max_queue=1, ping_interval=None)
    slow_conn = await srv.gateway.accepted.get()
    await hub.join("alice", fast_conn)
    await hub.join("alice", slow_conn)

    received: list[int] = []
    caught_up = asyncio.Event()
    target = 0

    async def read_fast() -> None:
        async for message in fast:
            received.append(msgpack.unpackb(message)["i"])
            if len(received) >= target:
                caught_up.set()

    async def dispatch(count: int) -> None:
        nonlocal target
        for _ in range(count):
            hub.dispatch("alice", {"i": target, "pad": "x" * 1024})
            target += 1
        caught_up.clear()
        if len(received) < target:
            await caught_up.wait()  # the fast client keeps up by construction

    reader = asyncio.create_task(read_fast())
    async with asyncio.timeout(30):
        while slow_conn.is_open:
            await dispatch(16)
            assert slow_conn.buffered_bytes <= limit + 64  # + the close frame once cut
        for _ in range(8):
            await dispatch(16)  # the room goes on for the fast client
    assert received == list(range(target))
    assert slow_conn.close_code == CLOSE_TOO_SLOW
    assert slow_conn.buffered_bytes <= limit + 64

    # Reading again, the slow client finds what fit in the buffers, then the 4008 close frame.
    with pytest.raises(ConnectionClosedError) as closed:
        async with asyncio.timeout(10):
            async for _ in slow:
                pass
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == CLOSE_TOO_SLOW
    assert closed.value.rcvd.reason == "too slow"
    await fast.close()
    await reader


async def test_a_slow_reader_gets_only_the_latest_viewer_count_not_a_backlog(start_ws_server) -> None:
    srv = await start_ws_server(Settings(outbox_limit_bytes=16 * 1024 * 1024))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    slow = await connect(srv.url(), sock=sock, max_queue=1, ping_interval=None)
    conn = await srv.gateway.accepted.get()

    async def fill_until_paused() -> bool:
        conn.send({"t": "pad", "pad": "x" * 65536})
        await asyncio.sleep(0)  # one loop tick: the flush runs
        return conn.writing_paused

    await wait_until(fill_until_paused, timeout=10)  # the transport is full: frames wait
    for count in range(1, 101):
        conn.send_coalesced(("viewers", "alice"), SharedFrame({"t": "viewers", "count": count}))
        await asyncio.sleep(0)  # across loop ticks, not only within one
    conn.send({"t": "marker"})

    received: list[Any] = []
    async with asyncio.timeout(10):
        while not received or received[-1]["t"] != "marker":
            received.append(msgpack.unpackb(await slow.recv()))
    assert [frame for frame in received if frame["t"] == "viewers"] == [{"t": "viewers", "count": 100}]
    assert received[-2:] == [{"t": "viewers", "count": 100}, {"t": "marker"}]
    await slow.close()


async def test_frames_queued_on_many_connections_in_one_tick_are_written_by_one_callback(start_ws_server) -> None:
    srv = await start_ws_server()
    clients = [await connect(srv.url()) for _ in range(5)]
    conns = [await srv.gateway.accepted.get() for _ in clients]
    flusher = Flusher.for_loop(asyncio.get_running_loop(), Settings().coalesce_ms / 1000)  # the connections'
    await asyncio.sleep(0)  # let the tick that wrote the handshakes' flushes run first
    runs_before, writes_before = flusher.runs, [conn.writes for conn in conns]
    frame = SharedFrame({"t": "gift", "seq": 1})
    for conn in conns:
        conn.send_shared(frame)
        conn.send({"t": "own"})
    assert [[await recv_event(ws), await recv_event(ws)] for ws in clients] == \
        [[{"t": "gift", "seq": 1}, {"t": "own"}]] * len(clients)
    assert flusher.runs == runs_before + 1
    assert [conn.writes for conn in conns] == [n + 1 for n in writes_before]
    for ws in clients:
        await ws.close()

