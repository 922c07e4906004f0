"""WithdrawalStore: creators' withdrawals in Redis (`request_withdrawal.lua`, `settle_withdrawal.lua`).

The review queue (`keys.WITHDRAWAL_REVIEW`, pending withdrawals by creation time) is an index
for admins, written after the script that creates or moves a withdrawal, not inside it: the
script touches only the creator's keys (one hash slot, as Redis Cluster requires), and the
queue spans every creator. The withdrawal hash is the truth; if a process dies between the
script and the index write, the withdrawal is still pending and held, visible to its creator
and through `GET /v1/admin/users/{id}/withdrawals`, just missing from the queue.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis.asyncio as aioredis

from server import keys
from server.errors import UnknownWithdrawal
from server.scripts import Scripts
from server.wallet_store import reply_or_raise
from server.withdrawals import WithdrawalLimits, WithdrawalQuote, creator_of

__all__ = ["WithdrawalStore", "HoldResult", "STEPS"]

STEPS = ("processing", "paid", "failed")
_INT_FIELDS = frozenset({"diamonds", "cash", "rate_version", "cash_per_1000_diamonds", "created_at", "approved_at",
                         "paid_at", "failed_at"})
_HIDDEN = frozenset({"fingerprint"})


@dataclasses.dataclass(frozen=True, slots=True)
class HoldResult:
    withdrawal_id: str
    diamonds: int  # the creator's diamonds after the hold
    diamonds_held: int
    replay: bool


def _decode(row: dict[bytes, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in row.items():
        field = name.decode()
        if field not in _HIDDEN:
            out[field] = int(value) if field in _INT_FIELDS else value.decode()
    return out


class WithdrawalStore:
    def __init__(self, client: aioredis.Redis, scripts: Scripts, *, limits: WithdrawalLimits):
        self._client = client
        self._scripts = scripts
        self._limits = limits

    async def request(self, quote: WithdrawalQuote) -> HoldResult:
        creator, wid = quote.creator, quote.id
        reply = await self._scripts.request_withdrawal(
            keys=[keys.wallet(creator), keys.ledger(creator), keys.withdrawal(creator, wid),
                  keys.withdrawals(creator), keys.limits(creator)],
            args=[wid, creator, quote.diamonds, quote.cash, quote.currency, quote.region, quote.rate_version,
                  quote.cash_per_1000_diamonds, quote.method, quote.fingerprint, quote.key,
                  self._limits.day, self._limits.week],
        )
        diamonds, held, replay, created_at = reply_or_raise(reply)
        if not int(replay):
            await self._client.zadd(keys.WITHDRAWAL_REVIEW, {wid: int(created_at)})
        return HoldResult(wid, int(diamonds), int(held), bool(int(replay)))

    async def step(self, wid: str, step: str, *, payout_id: str = "", who: str, reason: str = "",
                   cash: int = 0, currency: str = "") -> tuple[str, bool]:
        """Move a withdrawal one step (see settle_withdrawal.lua); returns (status, replay)."""
        creator = creator_of(wid)
        reply = await self._scripts.settle_withdrawal(
            keys=[keys.withdrawal(creator, wid), keys.wallet(creator), keys.ledger(creator)],
            args=[wid, step, payout_id, who, reason, cash, currency],
        )
        status, replay = reply_or_raise(reply)
        await self._client.zrem(keys.WITHDRAWAL_REVIEW, wid)  # out of "pending" either way
        return status.decode(), bool(int(replay))

    async def get(self, wid: str) -> dict[str, Any]:
        row = await self._client.hgetall(keys.withdrawal(creator_of(wid), wid))
        if not row:
            raise UnknownWithdrawal(f"no withdrawal {wid!r}")
        return _decode(row)

    async def list(self, creator: str, *, limit: int = 50) -> list[dict[str, Any]]:
        ids = await self._client.zrevrange(keys.withdrawals(creator), 0, limit - 1)
        return await self._rows([(creator, wid.decode()) for wid in ids])

    async def awaiting_review(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """Pending withdrawals of every creator, oldest first (the review queue)."""
        ids = [wid.decode() for wid in await self._client.zrange(keys.WITHDRAWAL_REVIEW, 0, limit - 1)]
        return await self._rows([(creator_of(wid), wid) for wid in ids])

    async def _rows(self, ids: list[tuple[str, str]]) -> list[dict[str, Any]]:
        async with self._client.pipeline(transaction=False) as pipe:
            for creator, wid in ids:
                pipe.hgetall(keys.withdrawal(creator, wid))
            rows = await pipe.execute()
        return [_decode(row) for row in rows if row]
