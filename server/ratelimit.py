"""Frame rate limits: token buckets per connection and per user, and a flood rule. Pure: the caller
passes `now`.

Every WebSocket message a client sends takes a token; tokens refill at `rate_per_s` up to
`burst`. A message that finds the bucket empty is refused (the transport answers it with a
`rate_limited` error and does not process it). A client that keeps sending while refused is
flooding: once `flood_limit` messages have been refused with no pause of `FLOOD_PAUSE_S`
between two refusals, the connection is to be closed (1008). A client that backs off, even
briefly, starts counting from zero again.

A user's connections in one process also share a bucket (`UserBuckets`): a message must find a
token in its connection's bucket and then in its user's. So opening more connections does not
multiply what one user may send to a process (the per-address connection limit bounds how many
connections an address holds; each process keeps its own user buckets: no Redis round trip per
frame).

The per-user gift rate is a different limit, shared by all processes: it lives in Redis, in
the viewer-side part of `lua/send_gift.lua` (GCRA).
"""

from __future__ import annotations

import enum

__all__ = ["Admit", "TokenBucket", "FrameLimiter", "UserBuckets", "FLOOD_PAUSE_S"]

FLOOD_PAUSE_S = 1.0


class TokenBucket:
    """`burst` tokens, refilled continuously at `rate_per_s`; starts full."""

    __slots__ = ("rate_per_s", "burst", "_tokens", "_last")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if taken, else the seconds until one will be available."""
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate_per_s)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s


class Admit(enum.Enum):
    ACCEPT = "accept"
    REFUSE = "refuse"  # answer rate_limited, do not process
    FLOOD = "flood"  # close the connection with 1008


class FrameLimiter:
    """One connection's inbound message limit. `rate_per_s` 0 admits everything, unless the
    connection is given its user's bucket (`share`)."""

    __slots__ = ("_bucket", "_user_bucket", "_flood_limit", "_refused", "_last_refused", "retry_after_s")

    def __init__(self, rate_per_s: float, burst: int, flood_limit: int, now: float) -> None:
        self._bucket = TokenBucket(rate_per_s, burst, now) if rate_per_s > 0 else None
        self._user_bucket: TokenBucket | None = None
        self._flood_limit = flood_limit
        self._refused = 0  # refusals since the last pause of FLOOD_PAUSE_S
        self._last_refused = now
        self.retry_after_s = 0.0  # after REFUSE: when the next message would be accepted

    def share(self, user_bucket: TokenBucket | None) -> None:
        """From now on a message also takes a token from `user_bucket` (the user's, in this process)."""
        self._user_bucket = user_bucket

    def admit(self, now: float) -> Admit:
        wait = 0.0 if self._bucket is None else self._bucket.take(now)
        if wait == 0.0 and self._user_bucket is not None:
            wait = self._user_bucket.take(now)  # (refused here, the connection's token is spent)
        if wait == 0.0:
            return Admit.ACCEPT
        if now - self._last_refused >= FLOOD_PAUSE_S:
            self._refused = 0
        self._refused += 1
        self._last_refused = now
        self.retry_after_s = wait
        return Admit.FLOOD if self._refused >= self._flood_limit else Admit.REFUSE


class UserBuckets:
    """The per-user buckets of one process, each shared by the user's open connections. A bucket
    lives while its user has a connection here (counted), so the table never outgrows them.
    `rate_per_s` 0: no per-user limit (`acquire` gives None)."""

    __slots__ = ("rate_per_s", "burst", "_held")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._held: dict[str, tuple[TokenBucket, int]] = {}  # user -> (bucket, connections)

    def acquire(self, user: str, now: float) -> TokenBucket | None:
        """The user's bucket, for one more connection (give it back with `release`)."""
        if self.rate_per_s <= 0:
            return None
        bucket, holders = self._held.get(user) or (TokenBucket(self.rate_per_s, self.burst, now), 0)
        self._held[user] = (bucket, holders + 1)
        return bucket

    def release(self, user: str) -> None:
        held = self._held.get(user)
        if held is None:
            return
        bucket, holders = held
        if holders > 1:
            self._held[user] = (bucket, holders - 1)
        else:
            del self._held[user]

    def __len__(self) -> int:
        return len(self._held)
