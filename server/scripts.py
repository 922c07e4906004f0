"""The Lua scripts, loaded from package files (`server/lua/*.lua`) with importlib.resources.

Each file is one atomic operation, headed by its KEYS/ARGV/return contract. Scripts run with
EVALSHA; when the server answers NOSCRIPT (after a restart or failover emptied its script
cache) redis-py loads the script and runs it again. NOSCRIPT is raised before a script runs,
so a money operation is never left half-done by it.

A line ``--@include NAME`` in a script is replaced by the text of ``NAME.lua`` (helpers shared
by several scripts, e.g. `lib_limits.lua`); each script is still loaded as one source.
"""

from __future__ import annotations

import dataclasses
import importlib.resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

__all__ = ["Scripts", "script_source"]


def script_source(name: str) -> str:
    text = importlib.resources.files("server.lua").joinpath(f"{name}.lua").read_text("utf-8")
    return "".join(script_source(line.strip()[len(_INCLUDE):]) if line.startswith(_INCLUDE) else line
                   for line in text.splitlines(keepends=True))


_INCLUDE = "--@include "


@dataclasses.dataclass(frozen=True, slots=True)
class Scripts:
    send_gift: AsyncScript
    set_live_state: AsyncScript
    credit_order: AsyncScript
    fail_order: AsyncScript
    reverse_order: AsyncScript
    buy_goods: AsyncScript
    request_withdrawal: AsyncScript
    settle_withdrawal: AsyncScript
    adjust_balance: AsyncScript
    set_spend_limit: AsyncScript

    @classmethod
    def register(cls, client: aioredis.Redis) -> Scripts:
        return cls(**{f.name: client.register_script(script_source(f.name)) for f in dataclasses.fields(cls)})
