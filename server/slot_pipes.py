"""SlotPipedScript: on Redis Cluster, a script's EVALSHA pipelined to the primary that owns its slot.

A gift on a cluster is three scripts (server/split_gift.py). Through redis-py's cluster client
each call finds the node, takes a pooled connection, packs the command and arms its retry
wrapper: several times the CPU of the call on one node (benchmarks/RESULTS.md, scenario 8).
This routes each call to a `ScriptPipe` (server/script_pipe.py) per primary, by the slot of its
first key in the client's own slot table, so calls to one node from one loop tick share a write.

Contracts (callable like redis-py's AsyncScript, as ScriptPipe is):

- Only for scripts that are safe to run again: the split gift's `gift_debit`, `gift_credit` and
  `gift_complete` are each keyed (idempotency key, gift ref, outbox entry) so a second run
  changes nothing and answers what the first did.
- Anything the pipe cannot settle runs the call once more through redis-py's cluster script,
  which follows redirects and refreshes the slot table: a MOVED or ASK reply (the slot moved:
  the script did not run there), TRYAGAIN or CLUSTERDOWN, and a lost or unreachable connection
  (the outcome is unknown; running it again is what makes it known). Any other error reply is
  the script's own and is raised.
- Pipes are per node address, created on first use and closed by `aclose()`; a node that left
  the cluster keeps an idle pipe until then (a handful of failovers in a process's life).
- `for_cluster` returns None where ScriptPipe cannot go (a TLS `rediss` seed): the caller keeps
  redis-py's script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from server.script_pipe import ScriptPipe

__all__ = ["SlotPipedScript"]

# Error replies that mean "not run here": the slot moved, or the cluster cannot serve it now.
_REROUTE = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN")


class SlotPipedScript:
    def __init__(self, client: RedisCluster, fallback: Any, seed_url: str, source: str) -> None:
        self._client = client
        self._fallback = fallback
        self._seed = urlsplit(seed_url)
        self._source = source
        self._pipes: dict[tuple[str, int], ScriptPipe] = {}
        self.rerouted = 0  # calls that went through redis-py instead (tests and logs)

    @classmethod
    def for_cluster(cls, client: RedisCluster, fallback: Any, seed_url: str, source: str) -> SlotPipedScript | None:
        return cls(client, fallback, seed_url, source) if urlsplit(seed_url).scheme == "redis" else None

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        node = self._client.nodes_manager.get_node_from_slot(self._client.keyslot(keys[0]))
        try:
            return await self._pipe(node.host, node.port)(keys, args)
        except ResponseError as exc:
            if not str(exc).startswith(_REROUTE):
                raise
        except RedisConnectionError:
            pass
        self.rerouted += 1
        return await self._fallback(keys, args)

    def _pipe(self, host: str, port: int) -> ScriptPipe:
        pipe = self._pipes.get((host, port))
        if pipe is None:
            credentials = self._seed.netloc.rpartition("@")[0]
            netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
            pipe = ScriptPipe.for_url(urlunsplit(self._seed._replace(netloc=netloc)), self._source)
            assert pipe is not None  # for_cluster admits plain redis:// seeds only
            self._pipes[(host, port)] = pipe
        return pipe

    async def aclose(self) -> None:
        pipes, self._pipes = list(self._pipes.values()), {}
        for pipe in pipes:
            await pipe.aclose()
