"""Replicated acknowledgement: a money script answers only once replicas have it on disk.

With `GIFTCAST_REDIS_WAIT_REPLICAS=N` (N > 0), every money script (`scripts.MONEY`) runs as one
pipeline on one connection:

    EVALSHA <script> ...                 the operation, applied atomically on the primary
    PUBLISH giftcast:durability ""       a replicated no-op (see below)
    WAITAOF 1 N <timeout_ms>             fsynced in the primary's AOF and in N replicas' AOFs?

WAITAOF waits for the connection's last replicated write. The PUBLISH makes that "everything
the primary had applied when the script ran", so a script that wrote nothing — an idempotent
replay of an operation whose first answer was `durability_unknown` — also waits for the
original write to reach the replicas, instead of answering at once.

The reply is returned only when WAITAOF confirms the local AOF and N replicas. Otherwise the
script HAS run on the primary — it cannot be undone — and the caller gets `DurabilityUnknown`
(`durability_unknown`, 503): the operation is applied but may be lost if the primary fails now
and an unconfirmed replica is promoted. Retrying with the same idempotency key answers it: a
replay (it survived, and this answer waited for the replicas again) or a fresh apply (it was
lost with the primary; it happens now, once). A script that answered `{"err", code}` wrote
nothing (every check precedes the first write), so its error is returned as it is (after the
same wait: the three commands travel together, one round trip for every operation).
See docs/durability.md.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from server.keys import DURABILITY_CHANNEL
from server.errors import ConfigError, DurabilityUnknown
from server.settings import Settings

__all__ = ["ReplicaWait", "DurableScript", "check_replication"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaWait:
    replicas: int  # replicas whose AOF must hold a money write before it is acknowledged
    timeout_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplicaWait | None:
        """None when GIFTCAST_REDIS_WAIT_REPLICAS is 0 (acknowledge once the primary has it)."""
        if not settings.redis_wait_replicas:
            return None
        return cls(settings.redis_wait_replicas, settings.redis_wait_timeout_ms)


class DurableScript:
    """A money script whose successful reply waits for `wait.replicas` replicas (see module doc)."""

    __slots__ = ("_script", "_client", "_wait", "_loaded")

    def __init__(self, script: AsyncScript, client: Redis, wait: ReplicaWait) -> None:
        self._script = script
        self._client = client
        self._wait = wait
        # Loaded before the first call: a NOSCRIPT in the pipeline still sends the PUBLISH and the
        # WAITAOF after it, which wait for the replicas for nothing (after a restart or failover,
        # once per script, that is unavoidable and harmless).
        self._loaded = False

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        assert client is None, "a money script is not pipelined by its caller"
        reply, (local, replicas) = await self._run(list(keys or ()), list(args or ()))
        if _is_error(reply):
            return reply
        if local < 1 or replicas < self._wait.replicas:
            raise DurabilityUnknown(
                f"applied, but only {replicas} of {self._wait.replicas} replicas confirmed it; "
                "retry with the same idempotency key to learn whether it stands")
        return reply

    async def _run(self, script_keys: list[Any], script_args: list[Any]) -> tuple[Any, list[int]]:
        if not self._loaded:
            await self._client.script_load(self._script.script)
            self._loaded = True
        reply, acks = await self._pipeline(script_keys, script_args)
        if isinstance(reply, NoScriptError):  # it did not run: a restart or failover emptied the cache
            await self._client.script_load(self._script.script)
            reply, acks = await self._pipeline(script_keys, script_args)
        for result in (reply, acks):
            if isinstance(result, Exception):
                raise result
        return reply, [int(n) for n in acks]

    async def _pipeline(self, script_keys: list[Any], script_args: list[Any]) -> tuple[Any, Any]:
        """The script, the no-op and WAITAOF, sent together on one connection (one round trip)."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._script.sha, len(script_keys), *script_keys, *script_args)
            pipe.publish(DURABILITY_CHANNEL, b"")
            pipe.execute_command("WAITAOF", 1, self._wait.replicas, self._wait.timeout_ms)
            reply, _, acks = await pipe.execute(raise_on_error=False)
        return reply, acks


def _is_error(reply: Any) -> bool:
    return isinstance(reply, list) and bool(reply) and reply[0] in (b"err", "err")


async def check_replication(client: Redis, wait: ReplicaWait) -> None:
    """At start: the server must support WAITAOF with a local AOF (else ConfigError); fewer
    connected replicas than `wait.replicas` is only a warning (they may come later; until then
    money operations answer `durability_unknown`)."""
    try:
        await client.execute_command("WAITAOF", 1, 0, 1)
        connected = int((await client.info("replication")).get("connected_slaves", 0))
    except RedisError as exc:
        raise ConfigError(f"GIFTCAST_REDIS_WAIT_REPLICAS needs WAITAOF (Redis >= 7.2 or Valkey) and "
                          f"appendonly yes on the primary: {exc}") from exc
    if connected < wait.replicas:
        log.warning("GIFTCAST_REDIS_WAIT_REPLICAS=%d but %d replicas are connected: money operations "
                    "answer durability_unknown until enough replicas (with appendonly yes) catch up",
                    wait.replicas, connected)
