"""The Lua scripts, loaded from package files (`server/lua/*.lua`) with importlib.resources.

Each file is one atomic operation, headed by its KEYS/ARGV/return contract. Scripts run with
EVALSHA; when the server answers NOSCRIPT (after a restart or failover emptied its script
cache) redis-py loads the script and runs it again. NOSCRIPT is raised before a script runs,
so a money operation is never left half-done by it.

With an `observe(name)` factory (`Metrics.script_timer`), every call's duration is recorded.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

__all__ = ["Scripts", "script_source"]


def script_source(name: str) -> str:
    return importlib.resources.files("server.lua").joinpath(f"{name}.lua").read_text("utf-8")


class TimedScript:
    """An AsyncScript whose calls report their duration (seconds), failed calls included."""

    __slots__ = ("_script", "_observe")

    def __init__(self, script: AsyncScript, observe: Callable[[float], None]) -> None:
        self._script = script
        self._observe = observe

    async def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
        start = time.perf_counter()
        try:
            return await self._script(keys, args, client)
        finally:
            self._observe(time.perf_counter() - start)


@dataclasses.dataclass(frozen=True, slots=True)
class Scripts:
    send_gift: AsyncScript | TimedScript
    set_live_state: AsyncScript | TimedScript
    credit_order: AsyncScript | TimedScript
    fail_order: AsyncScript | TimedScript

    @classmethod
    def register(cls, client: aioredis.Redis,
                 observe: Callable[[str], Callable[[float], None]] | None = None) -> Scripts:
        scripts: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            script = client.register_script(script_source(field.name))
            scripts[field.name] = script if observe is None else TimedScript(script, observe(field.name))
        return cls(**scripts)
