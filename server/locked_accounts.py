"""The admins' index of locked accounts (`keys.LOCKED_ACCOUNTS`: user id -> ms when locked).

An account is locked when a reversed payment leaves its coins negative (`reverse_order.lua`)
and unlocked when a recharge or an admin adjustment brings them back to zero or more
(`credit_order.lua`, `adjust_balance.lua`). The wallet's `locked` field is the truth; this
index only lets admins list locked accounts without a SCAN. It is written after each of those
scripts, not inside them, for the reason the withdrawal review queue is (the scripts touch
one user's slot; the index spans every user): each script returns the wallet's lock state,
replays included, and `record` makes the index agree with it. So a webhook redelivered after
a process died between script and index (the provider retries until it gets a 2xx) repairs
the index. Two movements of one user racing (an unlock and a new lock) may leave the index
stale until that user's next locking movement; `list_locked` shows only wallets locked now,
and the audit reports every disagreement between the index and the wallets.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from server import keys

__all__ = ["record", "list_locked"]


async def record(client: aioredis.Redis, user_id: str, locked: bool) -> None:
    """Make the index agree with a lock state a script just reported for `user_id`."""
    if locked:
        await client.zadd(keys.LOCKED_ACCOUNTS, {user_id: int(time.time() * 1000)}, nx=True)
    else:
        await client.zrem(keys.LOCKED_ACCOUNTS, user_id)


async def list_locked(client: aioredis.Redis, *, limit: int) -> list[dict[str, Any]]:
    """Locked accounts, longest locked first: user id, coins (negative), why, since (ms)."""
    listed = await client.zrange(keys.LOCKED_ACCOUNTS, 0, limit - 1, withscores=True)
    async with client.pipeline(transaction=False) as pipe:
        for user, _ in listed:
            pipe.hmget(keys.wallet(user.decode()), ["coins", "locked"])
        wallets = await pipe.execute()
    return [{"user_id": user.decode(), "coins": int(coins or 0), "locked": why.decode(), "since": int(since)}
            for (user, since), (coins, why) in zip(listed, wallets, strict=True) if why is not None]
