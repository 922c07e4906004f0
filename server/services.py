"""Services: the one object the HTTP routes and WebSocket sessions share, built at start-up.

It also decides who may open a WebSocket (`open_session` for `/ws`, `open_event_stream` for
the integrators' event stream): a valid bearer token (query ``token`` or ``Authorization:
Bearer``), for browsers an allowed ``Origin``, and room under the per-address connection limit
(server/admission.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from server.admission import AddressLimit, client_host
from server.auth import Principal, bearer_token, verify_token
from server.bank import Bank
from server.catalog import Catalog
from server.event_stream import EventStream
from server.errors import Forbidden, GiftcastError, TokenInvalid, TooManyConnections
from server.gifting import GiftService
from server.history import RoomHistory
from server.hub import RoomHub
from server.live_store import LiveStore
from server.metrics import Metrics
from server.order_store import OrderStore
from server.payments import SandboxProvider
from server.ratelimit import UserBuckets
from server.session import Session
from server.settings import Settings
from server.viewers import ViewerCounter
from server.wallet_store import WalletStore

if TYPE_CHECKING:
    from server.connection import Connection

__all__ = ["Services"]

_Handler = TypeVar("_Handler", Session, EventStream)

log = logging.getLogger("giftcast.ws")


@dataclasses.dataclass(slots=True)
class Services:
    settings: Settings
    catalog: Catalog
    redis: aioredis.Redis
    wallets: WalletStore
    orders: OrderStore
    lives: LiveStore
    gifts: GiftService
    hub: RoomHub
    history: RoomHistory
    viewers: ViewerCounter
    sandbox: SandboxProvider
    redis_ready: Callable[[], Awaitable[bool]]  # PING with a short timeout; never raises
    connections: AddressLimit  # open WebSocket sessions per client address
    metrics: Metrics
    bank: Bank  # profiles, goods, withdrawals, grants, spending limits
    user_frames: UserBuckets  # per-user frame-rate buckets, shared by a user's connections here

    async def room_snapshot(self, room: str) -> dict[str, Any]:
        """The room as a joiner first sees it, with the room-wide viewer count."""
        snapshot = await self.lives.snapshot(room)
        snapshot["viewers"] = await self.viewers.count(room)
        return snapshot

    def authenticate(self, token: str | None) -> Principal:
        return verify_token(self.settings.token_secret, token, now=int(time.time()))

    def open_session(self, headers: Mapping[str, str], query: Mapping[str, str], connection: Connection) -> Session:
        """Called at the WebSocket handshake of `/ws`; raises an error-tree leaf to refuse it."""
        return self._open(headers, query, connection, lambda principal: Session(self, principal, connection))

    def open_event_stream(self, headers: Mapping[str, str], query: Mapping[str, str],
                          connection: Connection) -> EventStream:
        """Called at the handshake of the integrators' event WebSocket (server/event_stream.py)."""
        return self._open(headers, query, connection,
                          lambda principal: EventStream(self, principal, connection, dict(query)))

    def connection_closed(self, connection: Connection) -> None:
        """A session opened here ended: free its address slot, count its close code."""
        self.connections.release(client_host(connection.remote_address))
        closing = connection.protocol.close_sent or connection.protocol.close_rcvd
        self.metrics.connection_closed(closing.code if closing else 1006)  # 1006: no close frame

    def _open(self, headers: Mapping[str, str], query: Mapping[str, str], connection: Connection,
              start: Callable[[Principal], _Handler]) -> _Handler:
        try:
            handler = self._admit(headers, query, connection, start)
        except GiftcastError as exc:
            self.metrics.error(exc.code, "handshake")
            level = logging.WARNING if isinstance(exc, TooManyConnections) else logging.INFO
            log.log(level, "websocket handshake refused: %s", exc.code,
                    extra={"code": exc.code, "client": client_host(connection.remote_address)})
            raise
        self.metrics.connection_opened()
        return handler

    def _admit(self, headers: Mapping[str, str], query: Mapping[str, str], connection: Connection,
               start: Callable[[Principal], _Handler]) -> _Handler:
        try:
            origin, host, authorization = (headers.get(name) for name in ("Origin", "Host", "Authorization"))
        except LookupError:  # a header sent twice: ambiguous, so refused
            raise TokenInvalid("duplicate Origin, Host or Authorization header") from None
        self.check_origin(origin, host)
        principal = self.authenticate(bearer_token(authorization, query.get("token")))
        host_slot = client_host(connection.remote_address)
        self.connections.acquire(host_slot)  # released by connection_closed
        try:
            return start(principal)
        except BaseException:
            self.connections.release(host_slot)
            raise

    def check_origin(self, origin: str | None, host: str | None) -> None:
        """Browsers always send Origin; a page from another site may not use a viewer's token."""
        if origin is None:
            return  # not a browser: native apps, bots, overlays in OBS send none
        if origin in self.settings.allowed_origins:
            return
        if host and urlsplit(origin).netloc == host:
            return
        raise Forbidden("origin not allowed")
