"""giftcast on a real 3-node Valkey cluster, end to end: WebSocket viewers get the gifts, and a
hub process killed between a gift's debit and its credit loses and duplicates no coin."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgpack
import pytest
from websockets.asyncio.client import connect

from server import keys
from server.auth import mint_token
from server.split_gift import CRASH_EXIT_CODE
from tests.conftest import TOKEN_SECRET, LiveServer, free_port, wait_until
from tests.factories import make_stores
from tests.test_split_gift import viewer_on_another_node
from tests.ws_client import MSGPACK, Client

CREATOR = "alice"


@pytest.fixture
async def on_cluster(cluster, valkey_cluster):
    """Stores on the cluster, alice's room open, and a funded viewer whose wallet is on another node."""
    stores = make_stores(cluster)
    await stores.lives.set_state(CREATOR, "open")
    viewer = viewer_on_another_node(valkey_cluster, CREATOR)
    await stores.set_coins(viewer, 100)
    return stores, viewer


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., Awaitable[Client]]]:
    """Factory: a giftcast WebSocket client of `server`, joined to alice's room."""
    opened: list[Client] = []

    async def open_client(server: LiveServer, user: str) -> Client:
        ws = await connect(f"{server.ws_url}?token={server.token(user)}", subprotocols=[MSGPACK])
        opened.append(Client(ws, MSGPACK))
        assert (await opened[-1].request(t="join", room=CREATOR))["t"] == "joined"
        return opened[-1]

    yield open_client
    for c in opened:
        await c.ws.close()
        c._reader.cancel()


async def test_a_gift_reaches_websocket_viewers_of_a_server_on_the_cluster(
        start_server, valkey_cluster, on_cluster, client):
    stores, viewer = on_cluster
    server = await start_server(redis_url=valkey_cluster.url)
    watcher, sender = await client(server, "carol"), await client(server, viewer)
    ack = await sender.gift(gift_id="panda", count=2)
    event = await watcher.next_event()
    assert (event["from"], event["count"], event["seq"], event["creator_diamonds"]) == (
        viewer, 2, ack["receipt"]["seq"], 10)
    assert (ack["receipt"]["balance"], (await stores.wallets.balances(CREATOR)).diamonds) == (90, 10)


async def serve_with_failpoint(url: str, tmp_path) -> tuple[asyncio.subprocess.Process, int]:
    """A real `python -m server serve` on the cluster that dies right after a gift's debit."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": url, "PORT": str(port), "GIFTCAST_TOKEN_SECRET": TOKEN_SECRET,
           "GIFTCAST_FAILPOINT": "crash_after_debit", "GIFTCAST_GIFT_RECOVERY_S": "0.5",
           "GIFTCAST_LOG_LEVEL": "warning", "GIFTCAST_DATA_DIR": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "server", "serve", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    async with asyncio.timeout(30):
        line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
    assert "giftcast listening" in line, line
    return proc, port


async def test_a_hub_killed_between_debit_and_credit_loses_and_duplicates_no_coin(
        start_server, valkey_cluster, cluster, on_cluster, client, tmp_path):
    stores, viewer = on_cluster
    doomed, port = await serve_with_failpoint(valkey_cluster.url, tmp_path)
    try:
        token = mint_token(TOKEN_SECRET, viewer, "viewer", now=int(time.time()), ttl_s=600)
        async with connect(f"ws://127.0.0.1:{port}/ws?token={token}", subprotocols=[MSGPACK]) as ws:
            await ws.send(msgpack.packb({"t": "join", "id": 1, "room": CREATOR}))
            assert msgpack.unpackb(await ws.recv())["t"] == "joined"
            await ws.send(msgpack.packb({"t": "gift", "id": 2, "room": CREATOR, "gift_id": "panda", "count": 1,
                                         "key": "crash-1"}))
            async with asyncio.timeout(30):
                assert await doomed.wait() == CRASH_EXIT_CODE
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
    # Killed between the steps: debited, not credited, the gift in the viewer's outbox.
    assert (await stores.wallets.balances(viewer)).coins == 95
    assert (await stores.wallets.balances(CREATOR)).diamonds == 0
    assert await cluster.hexists(keys.outbox(viewer), "crash-1")

    survivor = await start_server(redis_url=valkey_cluster.url, gift_recovery_s=0.2)

    async def settled() -> bool:
        in_flight = sum([await cluster.zcard(keys.gifts_in_flight(p)) for p in range(keys.GIFT_PARTITIONS)])
        return (await stores.wallets.balances(CREATOR)).diamonds == 5 and in_flight == 0

    await wait_until(settled, timeout=15)
    (sent, paid), [received] = await stores.wallets.ledger(viewer), await stores.wallets.ledger(CREATOR)
    assert (paid["kind"], sent["kind"], received["kind"]) == ("recharge", "gift_sent", "gift_received")
    assert (sent["delta"], received["delta"], sent["ref"]) == (-5, 5, received["ref"])
    assert not await cluster.exists(keys.outbox(viewer))

    retry = await (await client(survivor, viewer)).gift(gift_id="panda", key="crash-1")
    assert retry["receipt"]["replay"] and retry["receipt"]["balance"] == 95
    assert (await stores.wallets.balances(viewer)).coins == 95

    audit = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "server", "audit"],
                                    env={**os.environ, "REDIS_URL": valkey_cluster.url}, capture_output=True,
                                    text=True, timeout=60)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "gifts in flight 0" in audit.stdout and "audit: OK" in audit.stdout
