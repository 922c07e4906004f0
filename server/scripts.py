"""The Lua scripts, loaded from package files (`server/lua/*.lua`) with importlib.resources.

Each file is one atomic operation, headed by its KEYS/ARGV/return contract. Scripts run with
EVALSHA; when the server answers NOSCRIPT (after a restart or failover emptied its script
cache) redis-py loads the script and runs it again. NOSCRIPT is raised before a script runs,
so a money operation is never left half-done by it.
"""

from __future__ import annotations

import dataclasses
import importlib.resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

__all__ = ["Scripts", "script_source"]


def script_source(name: str) -> str:
    return importlib.resources.files("server.lua").joinpath(f"{name}.lua").read_text("utf-8")


@dataclasses.dataclass(frozen=True, slots=True)
class Scripts:
    send_gift: AsyncScript
    set_live_state: AsyncScript
    set_goal: AsyncScript
    hook_update: AsyncScript
    credit_order: AsyncScript
    fail_order: AsyncScript

    @classmethod
    def register(cls, client: aioredis.Redis) -> Scripts:
        return cls(**{f.name: client.register_script(script_source(f.name)) for f in dataclasses.fields(cls)})
