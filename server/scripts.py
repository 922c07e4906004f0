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
`gift_credit` (Redis Cluster) one each.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re

from redis.commands.core import AsyncScript

__all__ = ["Scripts", "script_source"]

_INCLUDE = re.compile(r"^--#include ([a-z_]+)$", re.MULTILINE)


def _read(name: str) -> str:
    return importlib.resources.files("server.lua").joinpath(f"{name}.lua").read_text("utf-8")


def script_source(name: str) -> str:
    """The text of script `name`, each ``--#include LIB`` line replaced by lua/LIB.lua."""
    return _INCLUDE.sub(lambda match: _read(match.group(1)), _read(name))


@dataclasses.dataclass(frozen=True, slots=True)
class Scripts:
    send_gift: AsyncScript
    gift_debit: AsyncScript
    gift_credit: AsyncScript
    gift_complete: AsyncScript
    set_live_state: AsyncScript
    set_goal: AsyncScript
    hook_update: AsyncScript
    credit_order: AsyncScript
    fail_order: AsyncScript

    @classmethod
    def register(cls, client: object) -> Scripts:
        """Register every script with `client` (a redis.asyncio Redis or RedisCluster)."""
        return cls(**{f.name: client.register_script(script_source(f.name))  # type: ignore[attr-defined]
                      for f in dataclasses.fields(cls)})
