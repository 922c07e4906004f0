"""The WebSocket handshake's rules: which paths open which session, the subprotocol, the refusal.

Paths: only `/ws` and the integrators' event stream `/v1/integrations/events` (anything else:
404); `ENDPOINTS` names the gateway method that opens each. Subprotocols `giftcast.msgpack.v1`
(also the default when the client offers none) and `giftcast.json.v1` pick `Connection.fmt`
before the gateway's method runs; offering only unknown ones gets 400. The method authenticates
(`Authorization: Bearer` or `?token=`), checks Origin and the per-address limit; its
`GiftcastError` becomes the HTTP response (`rejection`): Unauthorized → 401, Forbidden → 403,
404, 429 and server-side (5xx) errors keep their status, anything else → 400; the body is
`{"error": {"code", "message"}}`.

The gateway contract (the real one is server/session.py; the ASGI app's lifespan puts it in its
state under "giftcast"):

    gateway.settings: Settings
    gateway.open_session(request_headers: Headers, query: dict[str, str],
                         connection: Connection) -> handler     # sync; may raise GiftcastError
    gateway.open_event_stream(...)                              # the same, for EVENTS_PATH
    handler.on_message(message: bytes | str) -> Awaitable[None]
    handler.on_close() -> None | Awaitable[None]
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from typing import Protocol as TypingProtocol

from websockets.datastructures import Headers
from websockets.exceptions import NegotiationError
from websockets.http11 import Response
from websockets.server import ServerProtocol

from server.codec import SUBPROTOCOLS
from server.connection import Connection
from server.errors import Forbidden, GiftcastError, Unauthorized
from server.ratelimit import TokenBucket
from server.settings import Settings

__all__ = [
    "DEFAULT_FORMAT", "ENDPOINTS", "EVENTS_PATH", "WS_PATH",
    "SessionGateway", "SessionHandler", "rejection", "select_subprotocol",
]

WS_PATH = "/ws"
EVENTS_PATH = "/v1/integrations/events"
ENDPOINTS = {WS_PATH: "open_session", EVENTS_PATH: "open_event_stream"}  # path -> gateway method
DEFAULT_FORMAT = "msgpack"


class SessionHandler(TypingProtocol):
    frame_bucket: TokenBucket | None  # the user's frame-rate bucket in this process, if limited

    def on_message(self, message: bytes | str) -> Awaitable[None]: ...
    def on_close(self) -> Awaitable[None] | None: ...


class SessionGateway(TypingProtocol):
    settings: Settings

    def open_session(
        self, request_headers: Headers, query: dict[str, str], connection: Connection
    ) -> SessionHandler: ...

    def open_event_stream(
        self, request_headers: Headers, query: dict[str, str], connection: Connection
    ) -> SessionHandler: ...


def select_subprotocol(protocol: ServerProtocol, offered: Sequence[str]) -> str | None:
    """websockets' `select_subprotocol` hook: the first of giftcast's formats the client offers."""
    if not offered:
        return None  # no header in the response; Connection.fmt stays the default
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    raise NegotiationError("unsupported subprotocol; expected one of " + ", ".join(SUBPROTOCOLS))


def rejection(protocol: ServerProtocol, error: GiftcastError) -> Response:
    """The HTTP response refusing the handshake with `error` (not sent yet)."""
    if isinstance(error, Unauthorized):
        status = 401
    elif isinstance(error, Forbidden):
        status = 403
    elif error.status >= 500 or error.status in (404, 429):
        status = error.status
    else:
        status = 400
    response = protocol.reject(status, json.dumps({"error": error.to_wire()}))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response
