"""giftcast on a Redis Cluster with replicas, through a failover: the primary serving a room (and
its wallets) hands over to its replica while gifts flow. The room's feed follows the slot to the
new primary by itself, a viewer sees every acknowledged gift once and in order (any gap is
recovered from the room history), retries with the same key charge once, and the books balance."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import RedisCluster
from websockets.asyncio.client import connect

from server import keys
from tests.cluster import ValkeyCluster
from tests.conftest import LiveServer
from tests.factories import make_stores
from tests.ws_client import MSGPACK, Client

CREATOR = "alice"


@pytest.fixture(scope="module")
def replicated_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """Three primaries, each with a replica: six Valkey processes, for this module only."""
    with ValkeyCluster(tmp_path_factory.mktemp("valkey-replicated"), primaries=3, replicas=1) as cluster:
        yield cluster


@pytest.fixture
async def replicated(replicated_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    async with replicated_cluster.flushed_client() as client:
        yield client


async def joined(server: LiveServer, user: str) -> Client:
    ws = await connect(f"{server.ws_url}?token={server.token(user)}", subprotocols=[MSGPACK])
    client = Client(ws, MSGPACK)
    assert (await client.request(t="join", room=CREATOR))["t"] == "joined"
    return client


async def gift_until_acked(sender: Client, key: str) -> dict[str, object]:
    """Send one gift, retrying with the same idempotency key while the cluster fails over."""
    async with asyncio.timeout(30):
        while True:
            reply = await sender.gift(gift_id="panda", key=key)
            if reply["t"] == "ack":
                return reply
            assert reply["error"]["code"] == "unavailable", reply  # only "try again" is acceptable
            await asyncio.sleep(0.1)  # retry pacing, as a client would back off


async def test_gifts_flow_through_a_failover_of_the_rooms_primary_exactly_once_and_in_order(
        start_server, replicated_cluster, replicated):
    stores = make_stores(replicated)
    await stores.lives.set_state(CREATOR, "open")
    await stores.set_coins("bob", 1000)
    server = await start_server(redis_url=replicated_cluster.url, gift_recovery_s=0.2)
    watcher, sender = await joined(server, "carol"), await joined(server, "bob")

    acked = [await gift_until_acked(sender, uuid.uuid4().hex) for _ in range(3)]
    room_primary = replicated_cluster.owner(keys.room_channel(CREATOR))
    sender_primary = replicated_cluster.owner(keys.wallet("bob"))
    await asyncio.to_thread(replicated_cluster.failover, room_primary)
    if sender_primary != room_primary:
        await asyncio.to_thread(replicated_cluster.failover, sender_primary)
    keys_after = [uuid.uuid4().hex for _ in range(5)]
    acked += [await gift_until_acked(sender, key) for key in keys_after]
    replays = [await gift_until_acked(sender, key) for key in keys_after[:2]]  # a client retrying

    seqs = [reply["receipt"]["seq"] for reply in acked]
    seen = [(await watcher.next_event())["seq"] for _ in seqs]
    assert seen == seqs == sorted(seqs)  # every acknowledged gift once, in order
    assert all(reply["receipt"]["replay"] for reply in replays)
    assert replicated_cluster.owner(keys.room_channel(CREATOR)) != room_primary
    assert (await stores.wallets.balances("bob")).coins == 1000 - 5 * len(acked)
    assert (await stores.wallets.balances(CREATOR)).diamonds == 5 * len(acked)
    for client in (watcher, sender):
        await client.ws.close()
        client._reader.cancel()
