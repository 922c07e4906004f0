"""The Lua scripts, loaded from package files (`server/lua/*.lua`) with importlib.resources.

Each script file is one atomic operation, headed by its KEYS/ARGV/return contract. Scripts run
with EVALSHA; when the server answers NOSCRIPT (after a restart or failover emptied its script
cache) redis-py loads the script and runs it again. NOSCRIPT is raised before a script runs,
so a money operation is never left half-done by it. On Redis Cluster, EVALSHA goes to the node
owning its keys' slot (every script's keys share one slot) and the reload happens there.

A gift has two halves, the sender's and the creator's. Each half is written once, as a library
file of Lua functions (`gift_sender_side.lua`, `gift_creator_side.lua`), and a script pulls a
library in with a line ``--#include NAME``, replaced by that file's text when the script is
loaded: `send_gift` (one node) includes both halves in one atomic script, `gift_debit` and
`gift_credit` (Redis Cluster) one each. The economy's helpers (`lib_amount.lua`, amounts;
`lib_limits.lua`, spending caps, self-set limits and day/week counters) are libraries too.
Includes are not nested: a script includes every library it uses, before the ones that use them.

With an `observe(name)` factory (`Metrics.script_timer`), every call's duration is recorded.
With a `ReplicaWait` (GIFTCAST_REDIS_WAIT_REPLICAS), every script in `MONEY` answers only once
replicas confirm it, else raises `DurabilityUnknown` (server/durable.py): the one place where a
money operation is acknowledged to a caller.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import time
from collections.abc import Callable
from typing import Any

from redis.commands.core import AsyncScript

from server.durable import DurableScript, ReplicaWait

__all__ = ["Scripts", "script_source", "MONEY"]

_INCLUDE = re.compile(r"^--#include ([a-z_]+)$", re.MULTILINE)


def _read(name: str) -> str:
    return importlib.resources.files("server.lua").joinpath(f"{name}.lua").read_text("utf-8")


def script_source(name: str) -> str:
    """The text of script `name`, each ``--#include LIB`` line replaced by lua/LIB.lua."""
    return _INCLUDE.sub(lambda match: _read(match.group(1)), _read(name))


class TimedScript:
    """An AsyncScript whose calls report their duration (seconds), failed calls included."""

    __slots__ = ("_script", "_observe")

    def __init__(self, script: AsyncScript | DurableScript, observe: Callable[[float], None]) -> None:
        self._script = script
        self._observe = observe

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        start = time.perf_counter()
        try:
            return await self._script(keys, args, client)
        finally:
            self._observe(time.perf_counter() - start)


Script = AsyncScript | DurableScript | TimedScript

# Every script but the room's live state, goal, viewer counts and streak ends, the integrator webhooks'
# delivery state and published rate versions (keys.py: not money; a rate is recorded in every
# gift it priced): they move coins or diamonds, or write the state (orders, withdrawals, limits,
# idempotency records) that decides who may. A new script waits unless it is listed here.
NOT_MONEY = frozenset({"set_live_state", "set_goal", "report_viewers", "end_streaks", "hook_update", "publish_rate"})


@dataclasses.dataclass(frozen=True, slots=True)
class Scripts:
    send_gift: Script
    gift_debit: Script
    gift_credit: Script
    gift_complete: Script
    set_live_state: Script
    credit_order: Script
    fail_order: Script
    report_viewers: Script
    set_goal: Script
    reverse_order: Script
    buy_goods: Script
    request_withdrawal: Script
    settle_withdrawal: Script
    adjust_balance: Script
    set_spend_limit: Script
    end_streaks: Script
    hook_update: Script
    publish_rate: Script

    @classmethod
    def register(cls, client: Any, observe: Callable[[str], Callable[[float], None]] | None = None,
                 wait: ReplicaWait | None = None) -> Scripts:
        """Register every script with `client` (a redis.asyncio Redis or RedisCluster); with `wait`
        (a plain Redis), the money scripts wait for replicas."""
        scripts: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            script: Script = client.register_script(script_source(field.name))
            if wait is not None and field.name in MONEY:
                script = DurableScript(script, client, wait)
            scripts[field.name] = script if observe is None else TimedScript(script, observe(field.name))
        return cls(**scripts)


MONEY = frozenset(field.name for field in dataclasses.fields(Scripts)) - NOT_MONEY
