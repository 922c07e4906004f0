"""SplitGiftStore: a gift on Redis Cluster, where the sender's coins and the creator's diamonds
live in different slots, so no one script can hold both. Exactly once, in single-slot steps:

0. Index the attempt: ZADD `keys.gifts_in_flight(partition)` "SENDER KEY ATTEMPT" with score =
   the time it becomes due for recovery (start + `recovery_s`); meanwhile read the room's status.
1. `gift_debit.lua`, sender's slot: idempotency lookup, checks (the room status just read;
   account lock, balance, spending caps and limits in `limits:{u:SENDER}`), debit (counting the
   spending), `gift_sent` ledger entry, the gift into the sender's outbox, pending idempotency
   record. It refuses to run after start + recovery_s / 2, so a debit never lands after the
   recovery loop decided the attempt had left nothing behind.
2. `gift_credit.lua`, creator's slot: credit, `gift_received` entry, live totals, history,
   SPUBLISH; idempotent by the gift's ref (a marker key), so running it twice credits once.
3. `gift_complete.lua`, sender's slot: outbox entry out, full receipt into the idempotency record.
4. ZREM the attempt from the index (best effort: recovery removes leftovers).

A crash anywhere leaves the attempt in the index, and `GiftRecovery` (gift_recovery.py) runs
`finish` for it once due: steps 2-3 if the outbox still holds the gift, nothing otherwise. A
retry by the sender with the same key finds the gift pending and finishes it itself.

Room open: checked before the debit with a read of the room (another slot), so a gift may be
debited just as the room closes; it is then still credited and counted in the live it was sent
into (`gift_creator_side.lua`). The receipt has the same shape as on one node.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable

import msgpack
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from server import keys
from server.economy import GiftCharge, SpendCaps
from server.errors import Unavailable
from server.leaderboards import iso_week
from server.scripts import Scripts
from server.wallet_store import GiftPolicy, GiftReceipt, script_error

__all__ = ["SplitGiftStore", "crash_after_debit", "CRASH_EXIT_CODE"]

log = logging.getLogger(__name__)

CRASH_EXIT_CODE = 86  # the exit status of the test-only failpoint crash_after_debit


def crash_after_debit() -> None:
    """TEST ONLY (GIFTCAST_FAILPOINT=crash_after_debit): die at once, as if SIGKILLed."""
    os._exit(CRASH_EXIT_CODE)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SplitGiftStore:
    """The gift path in steps joined by an outbox. Same `apply_gift` contract as WalletStore."""

    def __init__(self, client: RedisCluster | Redis, scripts: Scripts, *, idempotency_ttl_s: int,
                 history_len: int, recovery_s: float, spend_caps: SpendCaps, policy: GiftPolicy,
                 after_debit: Callable[[], None] | None = None) -> None:
        """`after_debit` runs right after a debit commits, before the credit: a test seam for
        crashes (`crash_after_debit`, or an exception); None in production."""
        self._client = client
        self._scripts = scripts
        self._idempotency_ttl_s = idempotency_ttl_s
        self._history_len = history_len
        self._recovery_ms = int(recovery_s * 1000)
        self._spend_caps = spend_caps
        self._policy = policy
        self._after_debit = after_debit

    async def apply_gift(self, charge: GiftCharge) -> GiftReceipt:
        sender, creator = charge.sender, charge.creator
        index = keys.gifts_in_flight(keys.gift_partition(sender))
        attempt = f"{sender} {charge.key} {secrets.token_hex(6)}"
        started_ms = int(time.time() * 1000)
        _, (status, live_id) = await asyncio.gather(
            self._client.zadd(index, {attempt: started_ms + self._recovery_ms}),
            self._client.hmget(keys.live(creator), ["status", "live_id"]),
        )
        reply = await self._scripts.gift_debit(
            keys=[keys.wallet(sender), keys.ledger(sender), keys.idempotency(sender, charge.key), keys.outbox(sender),
                  keys.limits(sender), keys.gift_rate(sender)],
            args=[sender, creator, charge.gift.id, charge.count, charge.coins, charge.diamonds, charge.rate_bp,
                  charge.fingerprint, self._idempotency_ttl_s, charge.key, status or b"closed", live_id or b"",
                  started_ms + self._recovery_ms // 2, self._spend_caps.day, self._spend_caps.week,
                  charge.rate_version, *self._policy.sender_args(), int(charge.gift.combo)],
        )
        outcome = _text(reply[0])
        if outcome == "debited" and self._after_debit is not None:
            self._after_debit()
        if outcome in ("debited", "pending"):
            receipt = await self._credit_and_complete(reply[1], replay=outcome == "pending")
        elif outcome == "done":
            receipt = GiftReceipt.from_result(reply[1], replay=True)
        else:
            await self._forget(index, attempt)
            raise script_error(reply)
        await self._forget(index, attempt)
        return receipt

    async def finish(self, sender: str, key: str) -> bool:
        """Complete `sender`'s gift with idempotency key `key` if it is still in the outbox;
        True if it was there. Safe to run any number of times, concurrently too."""
        entry = await self._client.hget(keys.outbox(sender), key)
        if entry is None:
            return False
        await self._credit_and_complete(entry, replay=True)
        return True

    async def _credit_and_complete(self, entry: bytes, *, replay: bool) -> GiftReceipt:
        gift = msgpack.unpackb(entry)
        sender, creator = gift["sender"], gift["creator"]
        credit = await self._scripts.gift_credit(
            keys=[keys.wallet(creator), keys.ledger(creator), keys.live(creator), keys.live_top(creator),
                  keys.live_history(creator), keys.credited(creator, gift["ref"]),
                  keys.live_streaks(creator), keys.live_streak_ends(creator),
                  keys.top_week(creator, iso_week(gift["ts"] / 1000)), keys.top_all(creator)],
            args=[entry, self._history_len, keys.room_channel(creator), self._idempotency_ttl_s,
                  self._policy.streak_window_ms, self._policy.week_ttl_s],
        )
        if _text(credit[0]) == "stale":
            log.error("gift %s (%s -> %s) was debited too long ago to credit safely; its outbox entry is "
                      "kept for an operator (see docs/architecture.md, Redis Cluster)", gift["ref"], sender, creator)
            raise Unavailable("gift could not be completed")
        seq, creator_diamonds = int(credit[1]), int(credit[2])
        await self._scripts.gift_complete(
            keys=[keys.outbox(sender), keys.idempotency(sender, gift["key"])],
            args=[gift["key"], seq, creator_diamonds],
        )
        return GiftReceipt.from_result([seq, gift["coins"], gift["balance"], gift["diamonds"], creator_diamonds,
                                        gift["rate"], gift["ts"], gift["live_id"]], replay=replay)

    async def _forget(self, index: str, attempt: str) -> None:
        try:
            await self._client.zrem(index, attempt)
        except (RedisError, RedisClusterException) as exc:  # harmless: the recovery loop removes it when it is due
            log.info("could not remove gift attempt from the in-flight index: %s", exc)
