"""SlotPipedScript (server/slot_pipes.py) on the session's real 3-node Valkey cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError

from server.redis_runtime import cluster_seed_url
from server.slot_pipes import SlotPipedScript
from tests.cluster import ValkeyCluster
from tests.conftest import free_port

COUNTER = """
local n = redis.call('INCR', KEYS[1])
if ARGV[1] == 'fail' then return redis.error_reply('BAD_INPUT no') end
return {n, ARGV[1]}
"""


@pytest.fixture
async def piped(cluster: RedisCluster, valkey_cluster: ValkeyCluster) -> AsyncIterator[SlotPipedScript]:
    seed = cluster_seed_url(valkey_cluster.url)
    assert seed is not None
    script = SlotPipedScript.for_cluster(cluster, cluster.register_script(COUNTER), seed, COUNTER)
    assert script is not None
    yield script
    await script.aclose()


def keys_on_every_node(valkey_cluster: ValkeyCluster) -> list[str]:
    """One {u:…}-style key per primary."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < len(valkey_cluster.nodes):
        key = f"n:{{u:{i}}}"
        found.setdefault(valkey_cluster.owner(key), key)
        i += 1
    return [found[n] for n in sorted(found)]


def make_stale(cluster: RedisCluster, key: str, port: int) -> None:
    """Point the client's slot table entry for `key` at 127.0.0.1:`port`, as a failover or a
    resharding the client has not heard of yet would leave it."""
    manager = cluster.nodes_manager
    # The client's own node object where it has one, so closing the client closes its connections.
    node = manager.nodes_cache.get(f"127.0.0.1:{port}") or ClusterNode("127.0.0.1", port)
    manager.slots_cache[cluster.keyslot(key)] = [node]


async def test_each_call_runs_on_the_primary_owning_its_key(piped, cluster, valkey_cluster) -> None:
    keys = keys_on_every_node(valkey_cluster)
    for key in keys:
        assert await piped(keys=[key], args=["rose"]) == [1, b"rose"]
    owners = {("127.0.0.1", valkey_cluster.nodes[valkey_cluster.owner(k)].port) for k in keys}
    assert set(piped._pipes) == owners and len(owners) == 3
    assert [int(await cluster.get(k)) for k in keys] == [1, 1, 1] and piped.rerouted == 0


async def test_a_moved_reply_reruns_the_call_through_redis_py_once(piped, cluster, valkey_cluster) -> None:
    key = keys_on_every_node(valkey_cluster)[0]
    make_stale(cluster, key, valkey_cluster.nodes[1].port)  # a real node that does not own it
    assert await piped(keys=[key], args=["rose"]) == [1, b"rose"]
    assert piped.rerouted == 1 and int(await cluster.get(key)) == 1  # ran once, on its owner


async def test_an_unreachable_node_reruns_the_call_through_redis_py(piped, cluster, valkey_cluster) -> None:
    key = keys_on_every_node(valkey_cluster)[2]
    make_stale(cluster, key, free_port())  # nothing listens there
    assert await piped(keys=[key], args=["rose"]) == [1, b"rose"]
    assert piped.rerouted == 1


async def test_the_scripts_own_error_is_raised_and_not_rerun(piped, cluster, valkey_cluster) -> None:
    key = keys_on_every_node(valkey_cluster)[1]
    with pytest.raises(ResponseError, match="BAD_INPUT"):
        await piped(keys=[key], args=["fail"])
    assert piped.rerouted == 0 and int(await cluster.get(key)) == 1


def test_a_tls_seed_gets_no_pipes(cluster) -> None:
    assert SlotPipedScript.for_cluster(cluster, None, "rediss://127.0.0.1:1", COUNTER) is None
