"""WalletStore: balances, gifts and the ledger in Redis. A thin adapter over the Lua scripts.

Every balance change is one script (see server/lua/); this module only builds KEYS/ARGV from
already-validated inputs and turns script replies into typed results or error-tree leaves.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from server import keys
from server.economy import GiftCharge, SpendCaps
from server.errors import GiftcastError, RateLimited, error_for_code
from server.leaderboards import WEEKLY_TTL_S, iso_week
from server.scripts import Scripts
from server.settings import Settings

__all__ = ["WalletStore", "GiftReceipt", "GiftPolicy", "Balances", "script_error"]


@dataclasses.dataclass(frozen=True, slots=True)
class GiftPolicy:
    """What the gift scripts apply besides amounts and caps: the sender's gift rate and the combo
    window. `rate_interval_us` is the GCRA emission interval (0: no limit), `rate_burst` the gifts
    allowed at once, `streak_window_ms` the combo window, `week_ttl_s` the weekly board's lifetime."""

    rate_interval_us: int
    rate_burst: int
    streak_window_ms: int
    week_ttl_s: int = WEEKLY_TTL_S

    @classmethod
    def from_settings(cls, settings: Settings) -> GiftPolicy:
        rate = settings.gift_rate_per_s
        # At least 1 us, so that a huge rate still limits rather than turning the limit off.
        interval = max(1, round(1_000_000 / rate)) if rate > 0 else 0
        return cls(interval, settings.gift_burst, settings.streak_window_ms)

    def sender_args(self) -> list[int]:
        return [self.rate_interval_us, self.rate_burst]


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
        # Spelled out: dataclasses.asdict (deep copies, recursion) was 4% of a gift's CPU.
        return {"seq": self.seq, "coins_spent": self.coins_spent, "balance": self.balance,
                "diamonds_credited": self.diamonds_credited, "creator_diamonds": self.creator_diamonds,
                "rate_bp": self.rate_bp, "ts": self.ts, "live_id": self.live_id, "replay": self.replay}

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


def script_error(reply: Sequence[Any]) -> GiftcastError:
    """The error of a script's {"err", code} reply ({"err", "rate_limited", retry_after_ms} too)."""
    code = _text(reply[1])
    if code == RateLimited.code:
        return RateLimited("too many gifts; retry later", retry_after_ms=int(reply[2]))
    return error_for_code(code)


def reply_or_raise(reply: list[Any]) -> list[Any]:
    """A script's {"ok", ...} reply without its tag; {"err", code} raises that error."""
    if _text(reply[0]) == "err":
        raise script_error(reply)
    return reply[1:]


class WalletStore:
    def __init__(self, client: aioredis.Redis, scripts: Scripts, *, idempotency_ttl_s: int, history_len: int,
                 spend_caps: SpendCaps, policy: GiftPolicy):
        self._client = client
        self._scripts = scripts
        self._idempotency_ttl_s = idempotency_ttl_s
        self._history_len = history_len
        self._spend_caps = spend_caps
        self._policy = policy

    async def apply_gift(self, charge: GiftCharge) -> GiftReceipt:
        sender, creator = charge.sender, charge.creator
        reply = await self._scripts.send_gift(
            keys=[
                keys.wallet(sender), keys.ledger(sender), keys.idempotency(sender, charge.key),
                keys.wallet(creator), keys.ledger(creator), keys.live(creator),
                keys.live_top(creator), keys.live_history(creator), keys.limits(sender),
                keys.gift_rate(sender), keys.live_streaks(creator), keys.live_streak_ends(creator),
                keys.top_week(creator, iso_week(time.time())), keys.top_all(creator),
            ],
            args=[
                sender, creator, charge.gift.id, charge.count, charge.coins, charge.diamonds,
                charge.rate_bp, charge.fingerprint, self._idempotency_ttl_s, self._history_len,
                keys.room_channel(creator), charge.key,
                self._spend_caps.day, self._spend_caps.week, charge.rate_version,
                *self._policy.sender_args(), int(charge.gift.combo), self._policy.streak_window_ms,
                self._policy.week_ttl_s,
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
