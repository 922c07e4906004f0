"""AccountStore: admin grants and adjustments (`adjust_balance.lua`) and self-set spending
limits (`set_spend_limit.lua`), in Redis.

The spending counters and limits live in one `limits:{u:ID}` hash (see `lua/lib_limits.lua`
for its fields); `spending` reads it back as the user sees it: caps, limits in force, a raise
waiting, and what was spent in the current UTC day and week.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from server import keys, locked_accounts
from server.economy import BalanceGrant, SpendCaps
from server.scripts import Scripts
from server.wallet_store import reply_or_raise

__all__ = ["AccountStore", "PERIODS", "window_ids"]

PERIODS = {"day": "d", "week": "w"}


def window_ids(now_ms: int) -> tuple[int, int]:
    """The UTC day number and the week number (weeks start on Monday), as lib_limits.lua counts."""
    day = now_ms // 1000 // 86400
    return day, (day + 3) // 7


def _limit(value: str | None) -> int | None:
    return None if value in (None, "none") else int(value)


class AccountStore:
    def __init__(self, client: aioredis.Redis, scripts: Scripts, *, idempotency_ttl_s: int, spend_caps: SpendCaps,
                 raise_delay_s: int):
        self._client = client
        self._scripts = scripts
        self._idempotency_ttl_s = idempotency_ttl_s
        self._spend_caps = spend_caps
        self._raise_delay_ms = raise_delay_s * 1000

    async def grant(self, grant: BalanceGrant) -> tuple[int, bool]:
        """Apply a reward or an adjustment once per key; returns (the unit's balance, replay)."""
        reply = await self._scripts.adjust_balance(
            keys=[keys.wallet(grant.user), keys.ledger(grant.user), keys.operation(grant.user, "grant", grant.key)],
            args=[grant.kind, grant.unit, grant.delta, grant.reason, grant.admin, grant.fingerprint,
                  self._idempotency_ttl_s, grant.key],
        )
        balance, replay, locked = reply_or_raise(reply)
        await locked_accounts.record(self._client, grant.user, bool(locked))
        return int(balance), bool(int(replay))

    async def set_spend_limit(self, user_id: str, period: str, coins: int | None) -> None:
        """Lower at once, raise after the delay (`period` is a key of PERIODS; None: no limit)."""
        reply = await self._scripts.set_spend_limit(
            keys=[keys.limits(user_id)],
            args=[PERIODS[period], "none" if coins is None else coins, self._raise_delay_ms],
        )
        reply_or_raise(reply)

    async def spending(self, user_id: str, now_ms: int) -> dict[str, Any]:
        raw = await self._client.hgetall(keys.limits(user_id))
        fields = {name.decode(): value.decode() for name, value in raw.items()}
        day, week = window_ids(now_ms)
        view: dict[str, Any] = {"user_id": user_id}
        for period, p in PERIODS.items():
            window = day if p == "d" else week
            spent = int(fields[f"spend_{p}"]) if fields.get(f"spend_{p}_id") == str(window) else 0
            in_force, waiting, at = fields.get(f"self_{p}"), fields.get(f"self_{p}_next"), fields.get(f"self_{p}_next_at")
            if waiting is not None and at is not None and int(at) <= now_ms:
                in_force, waiting, at = waiting, None, None
            view[period] = {
                "spent": spent,
                "platform_cap": self._spend_caps.day if p == "d" else self._spend_caps.week,
                "self_limit": _limit(in_force),
                "pending": None if waiting is None else {"self_limit": _limit(waiting), "applies_at": int(at or 0)},
            }
        return view
