"""The send side of one WebSocket connection: a bounded outbox of frames (shared pre-encoded
ones from server/frames.py, or its own), coalesced writes.

Contracts (docs/fanout.md explains why):

- `Connection.send_shared()` and `Connection.send()` never await, and raise only for an event
  that cannot be serialized (a bug). They append to the outbox; the first append since the last
  write registers the connection with the loop's `Flusher` (server/flusher.py), whose one
  callback per tick (or coalescing window) writes every registered connection's pending frames,
  each with a single `transport.write()`.
- Held while the transport is full: between the transport's `pause_writing` and
  `resume_writing` (its high-water mark), frames stay in the outbox instead of piling up in the
  transport, so `send_coalesced()` can still replace an unsent frame by its newer version.
- Bounded: when the transport's write buffer plus the outbox would exceed
  `settings.outbox_limit_bytes`, the connection is cut with close code 4008 ("too slow"),
  pending frames are dropped, and the socket is aborted if the peer does not finish closing.
- Order: bytes reach the socket in the order they were queued. Output of the Sans-I/O protocol
  (handshake response, pong, close, EOF) is written after every data frame queued before it.
- Data frames are written only while the protocol is OPEN; once our close frame is written,
  nothing but EOF follows it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.protocol import CONNECTING, OPEN, Protocol

from server.flusher import Flusher
from server.frames import SharedFrame, encode_frame
from server.settings import Settings

__all__ = [
    "CLOSE_POLICY_VIOLATION", "CLOSE_MESSAGE_TOO_BIG", "CLOSE_INTERNAL_ERROR", "CLOSE_SERVICE_RESTART", "CLOSE_TOO_SLOW",
    "CLOSE_TIMEOUT_S", "Connection",
]

log = logging.getLogger(__name__)

# Close codes giftcast sends (docs/fanout.md, "Close codes").
CLOSE_POLICY_VIOLATION = 1008  # sustained flooding past the frame rate limit
CLOSE_MESSAGE_TOO_BIG = 1009  # sent by websockets itself when a message exceeds max_frame_bytes
CLOSE_INTERNAL_ERROR = 1011  # keepalive ping unanswered
CLOSE_SERVICE_RESTART = 1012  # graceful shutdown: reconnect (to another process)
CLOSE_TOO_SLOW = 4008  # the client did not read fast enough; its outbox was full

# Seconds a peer gets to complete the closing handshake before the socket is aborted.
CLOSE_TIMEOUT_S = 5.0


class Connection:
    """The send side of one WebSocket connection.

    Created by `WebSocketTransport` as soon as the TCP connection is handed over, i.e. before the
    handshake completes: frames queued while CONNECTING are written right after the 101 response.
    `fmt` is "msgpack" or "json", fixed by the negotiated subprotocol before `open_session` runs.
    """

    __slots__ = (
        "transport", "protocol", "fmt", "remote_address", "close_timeout_s", "writes",
        "frames_sent", "_loop", "_limit", "_flusher", "_outbox", "_pending", "_base",
        "_slots", "_scheduled", "_close_timer", "_accepting", "_open", "_paused",
        "_output_done", "_eof_written", "_closed", "__weakref__",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: Protocol,
        settings: Settings,
        *,
        fmt: str = "msgpack",
        close_timeout_s: float = CLOSE_TIMEOUT_S,
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.fmt = fmt
        self.remote_address: Any = transport.get_extra_info("peername")
        self.close_timeout_s = close_timeout_s
        # Counters for tests and metrics: transport writes of data frames, and frames they carried.
        self.writes = 0
        self.frames_sent = 0
        self._loop = asyncio.get_running_loop()
        self._limit = settings.outbox_limit_bytes
        self._flusher = Flusher.for_loop(self._loop, settings.coalesce_ms / 1000)
        self._outbox: list[bytes] = []
        self._pending = 0  # bytes in _outbox
        self._base = 0  # transport buffer size when this batch started (read once per batch)
        self._slots: dict[object, int] | None = None  # coalescing key -> its frame's outbox index
        self._scheduled = False  # registered with the flusher, not flushed yet
        self._close_timer: asyncio.TimerHandle | None = None
        self._accepting = True  # frames may still be queued (no close started, not lost)
        self._open = False  # 101 written and protocol still OPEN: data frames may be written
        self._paused = False  # the transport is over its high-water mark: hold data frames
        self._output_done = False  # our close frame (or EOF) is written: nothing else may follow
        self._eof_written = False
        self._closed: asyncio.Future[None] = self._loop.create_future()

    # -- queueing (hot path) ------------------------------------------------------------------

    def send_shared(self, frame: SharedFrame) -> None:
        """Queue a shared pre-encoded frame. Never awaits; a no-op once the connection closes."""
        self._enqueue(frame.wire(self.fmt))

    def send(self, event: dict[str, Any]) -> None:
        """Queue an event for this connection only, in its wire format. Never awaits; a no-op
        once the connection closes."""
        if self._accepting:
            self._enqueue(encode_frame(event, self.fmt))

    def send_coalesced(self, key: object, frame: SharedFrame) -> None:
        """Queue a frame that only its latest version matters for (a viewer count): if a frame
        queued under `key` is still unsent, it is replaced in place. Never awaits."""
        if not self._accepting:
            return
        data = frame.wire(self.fmt)
        slot = None if self._slots is None else self._slots.get(key)
        if slot is not None:
            self._pending += len(data) - len(self._outbox[slot])
            self._outbox[slot] = data
            return
        self._enqueue(data)
        if self._accepting:  # not cut by this frame
            if self._slots is None:
                self._slots = {}
            self._slots[key] = len(self._outbox) - 1

    def _enqueue(self, data: bytes) -> None:
        if not self._accepting:
            return
        outbox = self._outbox
        if not outbox:
            # The transport buffer only shrinks between ticks; reading it once per batch keeps
            # the per-frame cost to an addition and a comparison.
            self._base = self.transport.get_write_buffer_size()
            if not self._scheduled:
                self._scheduled = True
                self._flusher.add(self)
        pending = self._pending + len(data)
        if self._base + pending > self._limit:
            self.cut()
            return
        self._pending = pending
        outbox.append(data)

    def flush(self) -> None:
        """Called by the flusher: write what the outbox holds (unless the transport is full)."""
        self._scheduled = False
        self._write_outbox()

    def _write_outbox(self, *, force: bool = False) -> None:
        """Write the outbox unless the transport is full (`force`: before protocol output)."""
        outbox = self._outbox
        if not outbox or not self._open or (self._paused and not force):
            return  # while CONNECTING, mark_open() writes the outbox after the 101 response
        self._outbox = []
        self._pending = 0
        self._slots = None
        if self.transport.is_closing():
            return  # lost or aborted; connection_lost() follows (uvloop raises on such writes)
        self.writes += 1
        self.frames_sent += len(outbox)
        self.transport.write(outbox[0] if len(outbox) == 1 else b"".join(outbox))

    def pause_writing(self) -> None:
        """The transport's buffer is over its high-water mark: keep new frames in the outbox."""
        self._paused = True

    def resume_writing(self) -> None:
        """The transport drained below its low-water mark: write what the outbox holds."""
        self._paused = False
        self._write_outbox()

    # -- protocol output ------------------------------------------------------------------------

    def mark_open(self) -> None:
        """Called once the 101 response is written: queued data frames may now go out."""
        self._open = self.protocol.state is OPEN and not self._output_done
        if self._open and self._outbox and not self._scheduled:
            self._scheduled = True
            self._flusher.add(self)

    def write_protocol_output(self) -> None:
        """Write what the Sans-I/O protocol has queued, after the data frames queued before it.

        Call after every `receive_data`/`receive_eof`/`send_*`/`accept`/`fail` on the protocol.
        """
        chunks = self.protocol.data_to_send()
        state = self.protocol.state
        if state is OPEN:
            if chunks:
                self._write_outbox(force=True)
        elif state is not CONNECTING and self._accepting:
            # A close frame was received, sent or the protocol failed: no data frame may follow.
            self._stop_data()
        output_done = self._output_done or self.transport.is_closing()
        for chunk in chunks:
            if not chunk:
                self._write_eof()
            elif not output_done:
                self.transport.write(chunk)
        if self.protocol.close_sent is not None:
            self._output_done = True
        if self.protocol.close_expected():
            self._arm_close_timer()

    def _write_eof(self) -> None:
        """End our side of the TCP stream, like websockets' asyncio adapter does."""
        self._output_done = True
        self._stop_data()
        if self._eof_written or self.transport.is_closing():
            return
        self._eof_written = True
        if self.transport.can_write_eof():
            try:
                self.transport.write_eof()
            except Exception:  # uvloop may raise RuntimeError on a dying socket
                self.transport.close()
        else:
            self.transport.close()

    def _stop_data(self) -> None:
        self._accepting = False
        self._open = False
        self._outbox.clear()
        self._pending = 0
        self._slots = None

    # -- closing ----------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True while frames queued now can still be delivered."""
        return self._accepting

    @property
    def writing_paused(self) -> bool:
        """True while the transport is full and new frames wait in the outbox."""
        return self._paused

    @property
    def buffered_bytes(self) -> int:
        """Bytes queued here plus bytes the transport has not handed to the kernel yet."""
        if self.transport.is_closing():
            return self._pending
        return self._pending + self.transport.get_write_buffer_size()

    @property
    def close_code(self) -> int | None:
        """The close code this server sent, once it sent one."""
        sent = self.protocol.close_sent
        return None if sent is None else sent.code

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake after every frame already queued. Idempotent."""
        if self.protocol.state is not OPEN:
            return
        self._write_outbox(force=True)
        self.protocol.send_close(code, reason)
        self.write_protocol_output()

    def fail(self, code: int, reason: str = "") -> None:
        """Send a close frame and end the TCP stream without waiting for the peer's close."""
        if self.protocol.state is not OPEN:
            return
        self._write_outbox(force=True)
        self.protocol.fail(code, reason)
        self.write_protocol_output()

    def cut(self) -> None:
        """Drop a client that does not keep up: discard its outbox, close with 4008.

        The close frame goes behind what the transport already buffers (at most the limit); if
        the peer has not read that by the close timeout, the socket is aborted. If the buffer
        alone is already over the limit, there is no point waiting: abort now.
        """
        if not self._accepting:
            return
        log.warning(
            "cutting slow WebSocket client %s: more than %d bytes unsent",
            self.remote_address, self._limit,
        )
        self._stop_data()
        if self.protocol.state is OPEN:
            self.protocol.send_close(CLOSE_TOO_SLOW, "too slow")
            self.write_protocol_output()  # arms the close timer
            if self.transport.get_write_buffer_size() <= self._limit:
                return
        self.transport.abort()  # still CONNECTING, or the buffer is hopeless

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self._closed.done():
            self._close_timer = self._loop.call_later(self.close_timeout_s, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_timer = None
        log.info("WebSocket client %s did not finish closing; aborting", self.remote_address)
        self.transport.abort()

    def connection_lost(self) -> None:
        """Called by the transport when the socket is gone. Drops whatever is still queued."""
        self._stop_data()
        self._output_done = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until the socket is gone."""
        await asyncio.shield(self._closed)
