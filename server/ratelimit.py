"""Per-connection frame rate limit: a token bucket and a flood rule. Pure: the caller passes `now`.

Every WebSocket message a client sends takes a token; tokens refill at `rate_per_s` up to
`burst`. A message that finds the bucket empty is refused (the transport answers it with a
`rate_limited` error and does not process it). A client that keeps sending while refused is
flooding: once `flood_limit` messages have been refused with no pause of `FLOOD_PAUSE_S`
between two refusals, the connection is to be closed (1008). A client that backs off, even
briefly, starts counting from zero again.

The per-user gift rate is a different limit, shared by all processes: it lives in Redis, in
the viewer-side part of `lua/send_gift.lua` (GCRA).
"""

from __future__ import annotations

import enum

__all__ = ["Admit", "TokenBucket", "FrameLimiter", "FLOOD_PAUSE_S"]

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
    """One connection's inbound message limit. `rate_per_s` 0 admits everything."""

    __slots__ = ("_bucket", "_flood_limit", "_refused", "_last_refused", "retry_after_s")

    def __init__(self, rate_per_s: float, burst: int, flood_limit: int, now: float) -> None:
        self._bucket = TokenBucket(rate_per_s, burst, now) if rate_per_s > 0 else None
        self._flood_limit = flood_limit
        self._refused = 0  # refusals since the last pause of FLOOD_PAUSE_S
        self._last_refused = now
        self.retry_after_s = 0.0  # after REFUSE: when the next message would be accepted

    def admit(self, now: float) -> Admit:
        if self._bucket is None:
            return Admit.ACCEPT
        wait = self._bucket.take(now)
        if wait == 0.0:
            return Admit.ACCEPT
        if now - self._last_refused >= FLOOD_PAUSE_S:
            self._refused = 0
        self._refused += 1
        self._last_refused = now
        self.retry_after_s = wait
        return Admit.FLOOD if self._refused >= self._flood_limit else Admit.REFUSE
