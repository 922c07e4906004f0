"""LiveStore: a creator's live room state in Redis: open/close, the goal, the join snapshot,
ending combo streaks, and the leaderboards."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import redis.asyncio as aioredis

from server import keys
from server.leaderboards import Period, board_key
from server.scripts import Scripts
from server.wallet_store import reply_or_raise

__all__ = ["LiveStore", "LiveState", "TOP_GIFTERS", "STREAKS_PER_CALL"]

TOP_GIFTERS = 10
STREAKS_PER_CALL = 100  # bounds one end_streaks call; the caller repeats while next_ms == 0


@dataclasses.dataclass(frozen=True, slots=True)
class LiveState:
    changed: bool
    status: str
    live_id: str
    seq: int
    epoch: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class LiveStore:
    def __init__(self, client: aioredis.Redis, scripts: Scripts, *, history_len: int,
                 streaks_per_call: int = STREAKS_PER_CALL):
        self._client = client
        self._scripts = scripts
        self._history_len = history_len
        self._streaks_per_call = streaks_per_call

    async def set_state(self, creator: str, status: str) -> LiveState:
        changed, state, live_id, seq, epoch = await self._scripts.set_live_state(
            keys=[keys.live(creator), keys.live_top(creator), keys.live_history(creator)],
            args=[creator, status, self._history_len, keys.room_channel(creator)],
        )
        if status == "closed":
            # After the close no gift can extend a streak: end them all now (right after the
            # `live` event) rather than at their deadlines. Also when already closed: a crash
            # between the two steps is completed by the next close (or by any sweeper).
            ended, next_ms = await self.end_streaks(creator, every=True)
            while ended and next_ms >= 0:  # more than one call's batch
                ended, next_ms = await self.end_streaks(creator, every=True)
        return LiveState(bool(changed), _text(state), _text(live_id), int(seq), _text(epoch))

    async def end_streaks(self, creator: str, *, every: bool = False) -> tuple[int, int]:
        """End the room's expired streaks (`every`: all of them), publishing one streak_end each.

        Returns (ended, next_ms): how many this call ended (another process may have ended the
        rest: each ends exactly once), and ms until the earliest open deadline (0: call again
        now, more expired ones remain; -1: no open streak).
        """
        ended, next_ms = await self._scripts.end_streaks(
            keys=[keys.live(creator), keys.live_streaks(creator), keys.live_streak_ends(creator),
                  keys.live_history(creator)],
            args=[creator, "all" if every else "expired", self._history_len, keys.room_channel(creator),
                  self._streaks_per_call],
        )
        return int(ended), int(next_ms)

    async def leaderboard(self, creator: str, period: Period, limit: int) -> list[list[Any]]:
        """Top gifters of `period` (the current ISO week for "week"), as [user_id, coins], best first."""
        top = await self._client.zrevrange(board_key(creator, period, time.time()), 0, limit - 1, withscores=True)
        return [[_text(user), int(score)] for user, score in top]

    async def set_goal(self, creator: str, diamonds: int) -> int:
        """Set the current live's diamond goal (0 clears it); returns the seq of its `goal` event.
        Raises RoomClosed when the creator is not live, InvalidField for a bad amount."""
        seq, _ = reply_or_raise(await self._scripts.set_goal(
            keys=[keys.live(creator), keys.live_history(creator)],
            args=[creator, diamonds, self._history_len, keys.room_channel(creator)],
        ))
        return int(seq)

    async def snapshot(self, creator: str) -> dict[str, Any]:
        """The room as a joiner first sees it. Events with seq <= snapshot seq are already in it."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.live(creator), ["status", "live_id", "seq", "epoch", "coins", "diamonds", "gifts", "goal"])
            pipe.hget(keys.wallet(creator), "diamonds")
            pipe.zrevrange(keys.live_top(creator), 0, TOP_GIFTERS - 1, withscores=True)
            (status, live_id, seq, epoch, coins, diamonds, gifts, goal), creator_diamonds, top = await pipe.execute()
        return {
            "room": creator,
            "status": _text(status or b"closed"),
            "live_id": _text(live_id or b""),
            "seq": int(seq or 0),
            "epoch": _text(epoch or b""),
            "live_coins": int(coins or 0),
            "live_diamonds": int(diamonds or 0),
            "live_gifts": int(gifts or 0),
            "goal": int(goal or 0),
            "creator_diamonds": int(creator_diamonds or 0),
            "top": [[_text(user), int(score)] for user, score in top],
        }
