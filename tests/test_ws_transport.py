"""WebSocketTransport (server/ws_transport.py): a real uvicorn on loopback, real clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN
from websockets.uri import parse_uri

from server.connection import (
    CLOSE_INTERNAL_ERROR, CLOSE_MESSAGE_TOO_BIG, CLOSE_SERVICE_RESTART, Connection,
)
from server.heartbeat import Heartbeat
from server.settings import Settings
from server.ws_transport import MAX_INFLIGHT, WebSocketTransport


async def recv_event(ws: ClientConnection) -> Any:
    async with asyncio.timeout(5):
        message = await ws.recv()
    return json.loads(message) if isinstance(message, str) else msgpack.unpackb(message)


def gated_handler(limit: int = MAX_INFLIGHT) -> Any:
    """A handler class whose calls block on `gate`; it records how many ran at once."""

    class GatedHandler:
        gate = asyncio.Event()
        reached = asyncio.Event()  # `limit` calls are running at once
        closed = asyncio.Event()  # on_close was called
        running = 0
        peak = 0
        log: list[str] = []
        frame_bucket = None  # no per-user frame rate

        def __init__(self, gateway: Any, connection: Connection) -> None:
            self.connection = connection

        async def on_message(self, message: bytes | str) -> None:
            cls = type(self)
            cls.running += 1
            cls.peak = max(cls.peak, cls.running)
            if cls.running >= limit:
                cls.reached.set()
            await cls.gate.wait()
            cls.running -= 1
            cls.log.append(f"done {message}")
            self.connection.send({"t": "done", "data": message})

        def on_close(self) -> None:
            type(self).log.append("on_close")
            type(self).closed.set()

    return GatedHandler


class SilentClient:
    """A raw client over Sans-I/O that completes the handshake, then never writes again:
    it answers no ping and echoes no close frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 protocol: ClientProtocol) -> None:
        self.reader, self.writer, self.protocol = reader, writer, protocol

    @classmethod
    async def open(cls, url: str) -> SilentClient:
        uri = parse_uri(url)
        reader, writer = await asyncio.open_connection(uri.host, uri.port)
        protocol = ClientProtocol(uri)
        protocol.send_request(protocol.connect())
        writer.writelines(protocol.data_to_send())
        async with asyncio.timeout(5):
            while protocol.state is not OPEN:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection during the handshake")
                protocol.receive_data(data)
                protocol.events_received()
        return cls(reader, writer, protocol)

    async def read_until_eof(self) -> list[Frame]:
        frames: list[Frame] = []
        async with asyncio.timeout(5):
            while data := await self.reader.read(65536):
                self.protocol.receive_data(data)
                frames += [e for e in self.protocol.events_received() if isinstance(e, Frame)]
        self.writer.close()
        return frames


# -- handshake ------------------------------------------------------------------------------------


async def test_unknown_path_gets_404(start_ws_server) -> None:
    srv = await start_ws_server()
    with pytest.raises(InvalidStatus) as refused:
        await connect(srv.url("/chat"))
    assert refused.value.response.status_code == 404


async def test_missing_token_gets_401_with_the_error_code(start_ws_server) -> None:
    srv = await start_ws_server()
    with pytest.raises(InvalidStatus) as refused:
        await connect(srv.url(token=None))
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["code"] == "token_missing"


async def test_bearer_header_carries_the_token(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url(token=None), additional_headers={"Authorization": "Bearer t0k3n"}) as ws:
        await ws.send("hi")
        assert await recv_event(ws) == {"t": "echo", "data": "hi"}


async def test_origin_refused_by_open_session_gets_403(start_ws_server) -> None:
    srv = await start_ws_server()
    with pytest.raises(InvalidStatus) as refused:
        await connect(srv.url(), origin="https://evil.example")
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["error"]["code"] == "forbidden"


async def test_no_subprotocol_defaults_to_msgpack_binary_frames(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url()) as ws:
        await ws.send("hi")
        async with asyncio.timeout(5):
            reply = await ws.recv()
        assert ws.subprotocol is None
    assert msgpack.unpackb(reply) == {"t": "echo", "data": "hi"}


async def test_msgpack_subprotocol_gets_binary_frames(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url(), subprotocols=["giftcast.msgpack.v1"]) as ws:
        await ws.send(b"\x01")
        async with asyncio.timeout(5):
            reply = await ws.recv()
        assert ws.subprotocol == "giftcast.msgpack.v1"
    assert isinstance(reply, bytes)
    assert msgpack.unpackb(reply) == {"t": "echo", "data": b"\x01"}


async def test_json_subprotocol_gets_text_frames(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url(), subprotocols=["giftcast.json.v1"]) as ws:
        await ws.send("hi")
        async with asyncio.timeout(5):
            reply = await ws.recv()
        assert ws.subprotocol == "giftcast.json.v1"
        conn = await srv.gateway.accepted.get()
        assert conn.fmt == "json"
    assert reply == '{"t":"echo","data":"hi"}'


async def test_only_unknown_subprotocols_get_400(start_ws_server) -> None:
    srv = await start_ws_server()
    with pytest.raises(InvalidStatus) as refused:
        await connect(srv.url(), subprotocols=["chat.v2"])
    assert refused.value.response.status_code == 400


async def test_compression_is_never_negotiated(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url(), compression="deflate") as ws:
        assert ws.protocol.extensions == []


# -- inbound messages -----------------------------------------------------------------------------


async def test_oversized_message_closes_with_1009(start_ws_server) -> None:
    srv = await start_ws_server(Settings(max_frame_bytes=1024))
    async with connect(srv.url()) as ws:
        await ws.send(b"x" * 2048)
        with pytest.raises(ConnectionClosedError):
            await recv_event(ws)
    assert ws.close_code == CLOSE_MESSAGE_TOO_BIG


async def test_fragmented_message_is_delivered_whole(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url()) as ws:
        await ws.send(["gi", "ft", "!"])
        assert await recv_event(ws) == {"t": "echo", "data": "gift!"}


async def test_invalid_utf8_text_closes_with_1007(start_ws_server) -> None:
    srv = await start_ws_server()
    client = await SilentClient.open(srv.url())
    client.writer.write(Frame(Opcode.TEXT, b"\xff\xfe").serialize(mask=True))
    await client.read_until_eof()
    assert client.protocol.close_rcvd is not None
    assert client.protocol.close_rcvd.code == 1007


async def test_in_flight_handlers_are_capped_and_reading_pauses(start_ws_server) -> None:
    handler = gated_handler()
    srv = await start_ws_server(handler=handler)
    async with connect(srv.url()) as ws:
        conn = await srv.gateway.accepted.get()
        for i in range(MAX_INFLIGHT * 2 + 5):
            await ws.send(f"m{i}")
        async with asyncio.timeout(5):
            await handler.reached.wait()
        assert handler.running == MAX_INFLIGHT
        assert not conn.transport.is_reading()
        handler.gate.set()
        replies = [await recv_event(ws) for _ in range(MAX_INFLIGHT * 2 + 5)]
        assert conn.transport.is_reading()
    assert sorted(r["data"] for r in replies) == sorted(f"m{i}" for i in range(MAX_INFLIGHT * 2 + 5))
    assert handler.peak == MAX_INFLIGHT


async def test_on_close_runs_once_after_in_flight_handlers_finish(start_ws_server) -> None:
    handler = gated_handler(limit=1)
    srv = await start_ws_server(handler=handler)
    ws = await connect(srv.url())
    conn = await srv.gateway.accepted.get()
    await ws.send("last words")
    async with asyncio.timeout(5):
        await handler.reached.wait()
        await ws.close()
        await conn.wait_closed()
    assert handler.log == []  # the handler is still running: nothing was cancelled
    handler.gate.set()
    async with asyncio.timeout(5):
        await handler.closed.wait()
    assert handler.log == ["done last words", "on_close"]
    assert srv.transports() == []


# -- heartbeat --------------------------------------------------------------------------------------


class QuickPings(WebSocketTransport):
    ping_interval_s = 0.02
    ping_timeout_s = 0.1


def counting_pongs() -> Any:
    """QuickPings that also counts the pongs it accepted (the client's answers)."""

    class CountingHeartbeat(Heartbeat):
        pongs = 0
        three_pongs = asyncio.Event()

        def pong_received(self, data: bytes) -> None:
            expected = self._ping_payload is not None and bytes(data) == self._ping_payload
            super().pong_received(data)
            if expected:
                type(self).pongs += 1
                if type(self).pongs >= 3:
                    type(self).three_pongs.set()

    class CountingPongs(QuickPings):
        heartbeat_type = CountingHeartbeat

    return CountingPongs


async def test_client_that_does_not_answer_pings_is_closed_with_1011(start_ws_server) -> None:
    srv = await start_ws_server(transport=QuickPings)
    client = await SilentClient.open(srv.url())
    frames = await client.read_until_eof()
    assert any(frame.opcode is Opcode.PING for frame in frames)
    assert client.protocol.close_rcvd is not None
    assert client.protocol.close_rcvd.code == CLOSE_INTERNAL_ERROR


async def test_client_that_answers_pings_stays_open(start_ws_server) -> None:
    transport = counting_pongs()
    srv = await start_ws_server(transport=transport)
    async with connect(srv.url(), ping_interval=None) as ws:
        async with asyncio.timeout(5):
            await transport.heartbeat_type.three_pongs.wait()
        await ws.send("still here")
        assert await recv_event(ws) == {"t": "echo", "data": "still here"}


# -- shutdown ------------------------------------------------------------------------------------


async def test_server_shutdown_closes_clients_with_1012(start_ws_server) -> None:
    srv = await start_ws_server()
    async with connect(srv.url()) as ws:
        srv.server.should_exit = True  # what SIGTERM does
        with pytest.raises(ConnectionClosedError):
            await recv_event(ws)
    assert ws.close_code == CLOSE_SERVICE_RESTART
    async with asyncio.timeout(5):
        await srv.task


async def test_shutdown_waits_for_in_flight_handlers_then_closes_with_1012(start_ws_server) -> None:
    handler = gated_handler(limit=1)
    srv = await start_ws_server(handler=handler)
    async with connect(srv.url()) as ws:
        conn = await srv.gateway.accepted.get()
        await ws.send("gift")
        async with asyncio.timeout(5):
            await handler.reached.wait()
        [transport] = srv.transports()
        transport.shutdown()
        assert conn.is_open  # a handler is in flight: its reply must still go out
        handler.gate.set()
        assert await recv_event(ws) == {"t": "done", "data": "gift"}
        with pytest.raises(ConnectionClosedError):
            await recv_event(ws)
    assert ws.close_code == CLOSE_SERVICE_RESTART
