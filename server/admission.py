"""Admission: how many WebSocket sessions one client address may hold open at once.

A connection flood from one address must not exhaust the server for everyone else. The
limit (`Settings.max_connections_per_address`, 0 = unlimited) is checked at the handshake,
after the token and Origin (an unauthenticated handshake is refused anyway and holds
nothing); past it the handshake gets HTTP 429 ``too_many_connections``. The address is the
TCP peer's: behind a reverse proxy every client shares the proxy's address, so there the
limit must be off or sized for the proxy.

Off by default, deliberately. The address is all giftcast knows of a client, and in the
recommended deployment (a reverse proxy or load balancer in front) it is the proxy's: any
default would silently cap the whole process at that many viewers. Exposed directly, viewers
behind carrier-grade NAT share one public address by the hundreds, so a default low enough to
matter against a flood would refuse real viewers of a popular stream. A flood must also present
valid tokens to hold anything (a refused handshake holds no slot). So per-IP connection limits
belong at the edge, where the real client address is known (e.g. nginx `limit_conn`); set this
when clients connect directly, to a few hundred.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from server.errors import TooManyConnections

__all__ = ["AddressLimit", "client_host"]


def client_host(peername: Any) -> str:
    """The host part of a transport's peername ((host, port, ...) for TCP; a path or None otherwise)."""
    if isinstance(peername, tuple) and peername:
        return str(peername[0])
    return str(peername)


class AddressLimit:
    """Counts open sessions per client host; `acquire` refuses past the limit."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    def acquire(self, host: str) -> None:
        if self._limit and self._open[host] >= self._limit:
            raise TooManyConnections(f"at most {self._limit} connections per address")
        self._open[host] += 1

    def release(self, host: str) -> None:
        self._open[host] -= 1
        if self._open[host] <= 0:
            del self._open[host]

    def open_from(self, host: str) -> int:
        return self._open[host]
