"""WalletStore: balances, gifts and the ledger in Redis. A thin adapter over the Lua scripts.

Every balance change is one script (see server/lua/); this module only builds KEYS/ARGV from
already-validated inputs and turns script replies into typed results or error-tree leaves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from server import keys
from server.economy import GiftCharge, SpendCaps
from server.errors import error_for_code
from server.scripts import Scripts

__all__ = ["WalletStore", "GiftReceipt", "Balances"]


@dataclasses.dataclass(frozen=True, slots=True)
class GiftReceipt:
    """What the sender is told: what was spent, what it earned, at which rate."""

    seq: int
    coins_spent: int
    balance: int
    diamonds_credited: int
    creator_diamonds: int
    rate_bp: int
    ts: int
    live_id: str
    replay: bool

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_result(cls, result: Sequence[Any], *, replay: bool) -> GiftReceipt:
        """From a gift script's result: [seq, coins, balance, diamonds, creator_diamonds, rate_bp,
        ts, live_id] (what the idempotency record stores)."""
        seq, coins, balance, diamonds, creator_diamonds, rate, ts, live_id = result
        return cls(int(seq), int(coins), int(balance), int(diamonds), int(creator_diamonds), int(rate),
                   int(ts), _text(live_id), replay)


@dataclasses.dataclass(frozen=True, slots=True)
class Balances:
    coins: int
    diamonds: int
    diamonds_held: int = 0  # held for withdrawals in progress
    locked: str | None = None  # why the account may not spend (a reversed payment), if it may not

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def reply_or_raise(reply: list[Any]) -> list[Any]:
    """A script's {"ok", ...} reply without its tag; {"err", code} raises that error."""
    if _text(reply[0]) == "err":
        raise error_for_code(_text(reply[1]))
    return reply[1:]


class WalletStore:
    def __init__(self, client: aioredis.Redis, scripts: Scripts, *, idempotency_ttl_s: int, history_len: int,
                 spend_caps: SpendCaps):
        self._client = client
        self._scripts = scripts
        self._idempotency_ttl_s = idempotency_ttl_s
        self._history_len = history_len
        self._spend_caps = spend_caps

    async def apply_gift(self, charge: GiftCharge) -> GiftReceipt:
        sender, creator = charge.sender, charge.creator
        reply = await self._scripts.send_gift(
            keys=[
                keys.wallet(sender), keys.ledger(sender), keys.idempotency(sender, charge.key),
                keys.wallet(creator), keys.ledger(creator), keys.live(creator),
                keys.live_top(creator), keys.live_history(creator), keys.limits(sender),
            ],
            args=[
                sender, creator, charge.gift.id, charge.count, charge.coins, charge.diamonds,
                charge.rate_bp, charge.fingerprint, self._idempotency_ttl_s, self._history_len,
                keys.room_channel(creator), charge.key,
                self._spend_caps.day, self._spend_caps.week, charge.rate_version,
            ],
        )
        *result, replay = reply_or_raise(reply)
        return GiftReceipt.from_result(result, replay=bool(int(replay)))

    async def balances(self, user_id: str) -> Balances:
        coins, diamonds, held, locked = await self._client.hmget(
            keys.wallet(user_id), ["coins", "diamonds", "diamonds_held", "locked"])
        return Balances(int(coins or 0), int(diamonds or 0), int(held or 0), _text(locked) if locked else None)

    async def ledger(self, user_id: str, *, limit: int = 50, before: str | None = None) -> list[dict[str, Any]]:
        """The user's ledger, newest first; `before` is an entry id to page from (exclusive)."""
        maximum = f"({before}" if before else "+"
        rows = await self._client.xrevrange(keys.ledger(user_id), max=maximum, min="-", count=limit)
        return [ledger_entry(entry_id, fields) for entry_id, fields in rows]


_INT_FIELDS = frozenset({"delta", "balance", "count", "rate_bp", "rate_version", "ts", "coins", "price", "cash",
                         "diamonds", "cash_per_1000_diamonds", "amount"})


def ledger_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": _text(entry_id)}
    for name, value in fields.items():
        field = _text(name)
        entry[field] = int(value) if field in _INT_FIELDS else _text(value)
    return entry
