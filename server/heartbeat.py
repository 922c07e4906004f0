"""A WebSocket connection's keepalive: a ping every `interval_s`; a pong that does not come back
within `timeout_s` calls `on_timeout()` (the transport closes with 1011).

One timer per connection: either "send the next ping" or "the pong is overdue". Each ping
carries a random payload; a pong with any other payload (a stale or unsolicited one) is ignored.
No ping is sent once the protocol has left OPEN; `interval_s` 0 disables pings.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from websockets.protocol import OPEN
from websockets.server import ServerProtocol

__all__ = ["Heartbeat"]


class Heartbeat:
    """Pings on `protocol`; `write()` sends what the protocol queued (the ping) to the socket."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: ServerProtocol, *, interval_s: float,
                 timeout_s: float, write: Callable[[], None], on_timeout: Callable[[], None]) -> None:
        self._loop = loop
        self._protocol = protocol
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._write = write
        self._on_timeout = on_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None

    def start(self) -> None:
        """Schedule the next ping."""
        if self._interval_s > 0:
            self._timer = self._loop.call_later(self._interval_s, self._send_ping)

    def pong_received(self, data: bytes) -> None:
        if self._ping_payload is None or bytes(data) != self._ping_payload:
            return
        self._ping_payload = None
        self.stop()
        self.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ping_payload = None

    def _send_ping(self) -> None:
        self._timer = None
        if self._protocol.state is not OPEN:
            return
        self._ping_payload = os.urandom(4)  # identifies this ping; stale pongs are ignored
        self._protocol.send_ping(self._ping_payload)
        self._write()
        self._timer = self._loop.call_later(self._timeout_s, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._ping_payload = None
        self._on_timeout()
