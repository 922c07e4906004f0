"""giftcast's uvicorn WebSocket protocol class: websockets' Sans-I/O `ServerProtocol` driven
straight on the asyncio transport. There is no ASGI on the WebSocket path (docs/fanout.md).

Use it with `uvicorn.Config(app, ws=WebSocketTransport)`. The ASGI app's lifespan puts the
session gateway in its state under "giftcast"; uvicorn hands that state to us as `app_state`.

Handshake: the paths, subprotocols, gateway contract and refusals are in server/ws_handshake.py;
a gateway method that raises anything but a `GiftcastError` is refused as a 500 (and logged).

Inbound: messages larger than `settings.max_frame_bytes` close the connection with 1009
(websockets enforces it, across fragments too). Fragmented messages are reassembled; text must
be UTF-8 (else 1007). Each complete message (bytes for binary, str for text) runs
`handler.on_message` in its own task, at most `max_inflight` at once; while at the limit,
reading from the socket is paused. Tasks start in arrival order and may finish in any order.

End: a disconnect cancels no handler task (they move money); `handler.on_close()` is called once
after the in-flight ones finish. Messages read but not yet started when the socket is lost are
dropped: the client never got an answer and retries with its idempotency key.

Rate: each message takes a token from the connection's bucket (`ratelimit.FrameLimiter`,
settings `frame_rate_per_s`/`frame_burst`), then from its user's (`handler.frame_bucket`, shared
by the user's connections to this process); a message finding one empty is not processed and gets
a `rate_limited` error frame (with its id when readable, and `retry_after_ms`); after
`frame_flood_limit` such refusals without a one-second pause, the connection reads no more and,
once the requests already running or waiting have replied (as on shutdown), closes with 1008
(policy violation): a flooder is told the outcome of every request that moved money.

Heartbeat (server/heartbeat.py): a ping every `ping_interval_s`; no pong within `ping_timeout_s`
→ close 1011.
Shutdown: uvicorn calls `shutdown()` on SIGTERM: reading stops, in-flight handlers finish,
then close 1012 ("service restart", reconnect).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections import deque
from collections.abc import Awaitable
from typing import Any, cast
from urllib.parse import parse_qsl

from websockets.datastructures import MultipleValuesError
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING, OPEN
from websockets.server import ServerProtocol

from server.codec import SUBPROTOCOLS, peek_request_id
from server.connection import (
    CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION, CLOSE_SERVICE_RESTART, CLOSE_TIMEOUT_S, Connection,
)
from server.errors import BadRequest, GiftcastError, NotFound, RateLimited, Unavailable
from server.heartbeat import Heartbeat
from server.ratelimit import Admit, FrameLimiter
from server.settings import Settings
from server.ws_handshake import (
    DEFAULT_FORMAT, ENDPOINTS, SessionGateway, SessionHandler, rejection, select_subprotocol,
)

__all__ = ["MAX_INFLIGHT", "PING_INTERVAL_S", "PING_TIMEOUT_S", "WebSocketTransport"]

log = logging.getLogger(__name__)

PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
MAX_INFLIGHT = 16


class WebSocketTransport(asyncio.Protocol):
    """One WebSocket connection: handshake, inbound messages, heartbeat, shutdown.

    The send side lives in `self.connection` (server/connection.py). Class attributes are the
    knobs tests override in a subclass.
    """

    ping_interval_s: float = PING_INTERVAL_S
    ping_timeout_s: float = PING_TIMEOUT_S
    max_inflight: int = MAX_INFLIGHT
    close_timeout_s: float = CLOSE_TIMEOUT_S
    heartbeat_type: type[Heartbeat] = Heartbeat

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = _loop or asyncio.get_running_loop()
        self._server_connections: set[Any] = server_state.connections
        self._server_tasks: set[asyncio.Task[Any]] = server_state.tasks
        self._gateway: SessionGateway | None = app_state.get("giftcast")
        settings = getattr(self._gateway, "settings", None)
        self._settings = settings if isinstance(settings, Settings) else Settings()
        self.protocol = ServerProtocol(
            select_subprotocol=select_subprotocol,
            max_size=self._settings.max_frame_bytes,
        )
        self.transport: asyncio.Transport | None = None
        self.connection: Connection | None = None
        self.handler: SessionHandler | None = None
        self._limiter = FrameLimiter(self._settings.frame_rate_per_s, self._settings.frame_burst,
                                     self._settings.frame_flood_limit, self._loop.time())
        self._inflight: set[asyncio.Task[None]] = set()
        self._backlog: deque[bytes | str] = deque()  # read, waiting for an in-flight slot
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._reading_paused = False
        # Set when the connection is to close once its in-flight handlers finish (their replies
        # go out first): (1012, ...) on shutdown, (1008, ...) for a flooding client.
        self._closing: tuple[int, str] | None = None
        self._lost = False
        self._on_close_called = False
        self._heartbeat = self.heartbeat_type(self._loop, self.protocol, interval_s=self.ping_interval_s,
                                    timeout_s=self.ping_timeout_s, write=self._write_protocol_output,
                                    on_timeout=self._ping_timed_out)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport = transport
        self.connection = Connection(
            transport, self.protocol, self._settings, close_timeout_s=self.close_timeout_s
        )
        self._server_connections.add(self)

    def data_received(self, data: bytes) -> None:
        assert self.connection is not None
        self.protocol.receive_data(data)
        events = self.protocol.events_received()
        self.connection.write_protocol_output()  # pongs, close echo, 1009/1002 closes, EOF
        for event in events:
            if isinstance(event, Frame):
                self._handle_frame(event)
            elif isinstance(event, Request):
                self._handle_request(event)

    def eof_received(self) -> None:
        assert self.connection is not None
        self.protocol.receive_eof()
        self.connection.write_protocol_output()
        # Returning None closes the transport: after EOF a WebSocket endpoint never writes.

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.protocol.receive_eof()  # idempotent; guarantees the protocol state is CLOSED
        self._heartbeat.stop()
        self._backlog.clear()
        self._fragments = []
        if self.connection is not None:
            self.connection.connection_lost()
        self._server_connections.discard(self)
        if not self._inflight:
            self._call_on_close()

    # Flow control never makes a sender wait: while the transport is full, Connection keeps
    # frames in its outbox (where viewer counts coalesce) and cuts the client past its limit (4008).

    def pause_writing(self) -> None:
        if self.connection is not None:
            self.connection.pause_writing()

    def resume_writing(self) -> None:
        if self.connection is not None:
            self.connection.resume_writing()

    # -- handshake --------------------------------------------------------------------------

    def _handle_request(self, request: Request) -> None:
        assert self.connection is not None
        path, _, query_string = request.path.partition("?")
        opener = ENDPOINTS.get(path)
        if opener is None:
            self._reject(NotFound("no WebSocket endpoint at this path"))
            return
        response = self.protocol.accept(request)
        if response.status_code != 101:
            self._send_response(response)
            return
        self.connection.fmt = SUBPROTOCOLS.get(self.protocol.subprotocol or "", DEFAULT_FORMAT)
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        try:
            if self._gateway is None:
                raise RuntimeError('no session gateway: app state has no "giftcast"')
            handler = getattr(self._gateway, opener)(request.headers, query, self.connection)
        except MultipleValuesError as exc:  # e.g. two Origin headers: ambiguous
            self._reject(BadRequest(f"duplicate header {exc}"))
            return
        except GiftcastError as exc:
            if exc.status >= 500:
                log.error("WebSocket handshake failed: %s", exc.message)
            self._reject(exc)
            return
        except Exception:
            log.exception("open_session failed")
            self._reject(GiftcastError())
            return
        self.handler = handler
        self._limiter.share(handler.frame_bucket)
        self._send_response(response)
        self.connection.mark_open()
        self._heartbeat.start()

    def _reject(self, error: GiftcastError) -> None:
        self._send_response(rejection(self.protocol, error))

    def _send_response(self, response: Response) -> None:
        assert self.connection is not None
        self.protocol.send_response(response)
        self.connection.write_protocol_output()

    # -- inbound messages ---------------------------------------------------------------------

    def _handle_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(opcode, frame.data)
            else:
                self._fragment_opcode = opcode
                self._fragments = [frame.data]
        elif opcode is Opcode.CONT:
            # The protocol guarantees a started message and enforces max_size across fragments.
            self._fragments.append(frame.data)
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                assert self._fragment_opcode is not None
                self._message(self._fragment_opcode, data)
        elif opcode is Opcode.PONG:
            self._heartbeat.pong_received(frame.data)
        elif opcode is Opcode.CLOSE:
            self._heartbeat.stop()
        # PING: the protocol queued the pong; data_received already wrote it.

    def _message(self, opcode: Opcode, data: bytes) -> None:
        assert self.connection is not None
        if self.protocol.state is not OPEN or self.handler is None or self._closing is not None:
            return  # closing (or closed): the client will resend after reconnecting
        message: bytes | str
        if opcode is Opcode.TEXT:
            try:
                message = data.decode()
            except UnicodeDecodeError:
                self.connection.fail(1007, "invalid UTF-8")
                return
        else:
            message = bytes(data)
        admit = self._limiter.admit(self._loop.time())
        if admit is not Admit.ACCEPT:
            self._refuse(message, admit)
            return
        if len(self._inflight) < self.max_inflight:
            self._start_handler(message)
        else:
            self._backlog.append(message)
        self._update_reading()

    def _refuse(self, message: bytes | str, admit: Admit) -> None:
        """Over the frame rate: answer without processing, or close a flooding client (1008)."""
        assert self.connection is not None
        if admit is Admit.FLOOD:
            log.info("WebSocket client %s floods past the frame rate; closing", self.connection.remote_address)
            self._closing = (CLOSE_POLICY_VIOLATION, "message rate limit exceeded")
            self._heartbeat.stop()
            self._drain_then_close()
            return
        error = RateLimited("too many messages; slow down",
                            retry_after_ms=math.ceil(self._limiter.retry_after_s * 1000))
        self.connection.send({"t": "error", "id": peek_request_id(message), **error.to_wire()})

    def _start_handler(self, message: bytes | str) -> None:
        task = self._loop.create_task(self._run_handler(message))
        self._inflight.add(task)
        self._server_tasks.add(task)  # uvicorn waits for these on graceful shutdown
        task.add_done_callback(self._handler_done)

    async def _run_handler(self, message: bytes | str) -> None:
        assert self.handler is not None
        try:
            await self.handler.on_message(message)
        except Exception:
            # The session layer turns GiftcastError into error frames; this is a bug there.
            log.exception("WebSocket message handler failed")

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._server_tasks.discard(task)
        while self._backlog and len(self._inflight) < self.max_inflight:
            self._start_handler(self._backlog.popleft())
        if self._inflight:
            self._update_reading()
        elif self._lost:
            self._call_on_close()
        elif self._closing is not None:
            self._close_drained()
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        """Pause reading at the in-flight limit or while draining before a close; resume otherwise."""
        assert self.transport is not None
        busy = len(self._inflight) >= self.max_inflight or bool(self._backlog)
        draining = self._closing is not None and self.protocol.state is OPEN
        pause = busy or draining
        if pause == self._reading_paused or self.transport.is_closing():
            return
        self._reading_paused = pause
        if pause:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _call_on_close(self) -> None:
        if self._on_close_called or self.handler is None:
            return
        self._on_close_called = True
        try:
            result = self.handler.on_close()
        except Exception:
            log.exception("WebSocket on_close handler failed")
            return
        if inspect.isawaitable(result):
            task = self._loop.create_task(_log_failure(result, "WebSocket on_close handler"))
            self._server_tasks.add(task)
            task.add_done_callback(self._server_tasks.discard)

    # -- heartbeat ----------------------------------------------------------------------------

    def _write_protocol_output(self) -> None:
        assert self.connection is not None
        self.connection.write_protocol_output()

    def _ping_timed_out(self) -> None:
        assert self.connection is not None
        log.info("WebSocket client %s did not answer a ping; closing", self.connection.remote_address)
        self.connection.fail(CLOSE_INTERNAL_ERROR, "keepalive ping timeout")

    # -- shutdown -------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown (uvicorn, SIGTERM): finish in-flight messages, then close 1012."""
        if self._closing is not None or self._lost:
            return
        self._closing = (CLOSE_SERVICE_RESTART, "service restart")
        self._heartbeat.stop()
        if self.protocol.state is CONNECTING:
            if not self.protocol.eof_sent:
                self._reject(Unavailable("server is restarting"))
            return
        if self.protocol.state is OPEN:
            self._drain_then_close()

    def _drain_then_close(self) -> None:
        """Read no new messages; close (`self._closing`) once the handlers running or waiting
        have replied."""
        if self._inflight or self._backlog:
            self._update_reading()  # the last handler to finish closes
        else:
            self._close_drained()

    def _close_drained(self) -> None:
        assert self.connection is not None and self._closing is not None
        self.connection.close(*self._closing)
        self._update_reading()  # read again: the client's close frame completes the handshake


async def _log_failure(awaitable: Awaitable[Any], what: str) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("%s failed", what)
