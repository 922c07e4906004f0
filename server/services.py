"""Services: the one object the HTTP routes and WebSocket sessions share, built at start-up.

It also decides who may open a WebSocket (`open_session`): a valid bearer token (query
``token`` or ``Authorization: Bearer``) and, for browsers, an allowed ``Origin``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from server.auth import Principal, verify_token
from server.catalog import Catalog
from server.errors import Forbidden
from server.gifting import GiftService
from server.hub import RoomHub
from server.live_store import LiveStore
from server.order_store import OrderStore
from server.payments import SandboxProvider
from server.session import Session
from server.settings import Settings
from server.wallet_store import WalletStore

if TYPE_CHECKING:
    from server.connection import Connection

__all__ = ["Services", "bearer_token"]


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return query_token


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
    sandbox: SandboxProvider

    def authenticate(self, token: str | None) -> Principal:
        return verify_token(self.settings.token_secret, token, now=int(time.time()))

    def open_session(self, headers: Mapping[str, str], query: Mapping[str, str], connection: Connection) -> Session:
        """Called at the WebSocket handshake; raises an error-tree leaf to refuse it."""
        self.check_origin(headers.get("Origin"), headers.get("Host"))
        principal = self.authenticate(bearer_token(headers.get("Authorization"), query.get("token")))
        return Session(self, principal, connection)

    def check_origin(self, origin: str | None, host: str | None) -> None:
        """Browsers always send Origin; a page from another site may not use a viewer's token."""
        if origin is None:
            return  # not a browser: native apps, bots, overlays in OBS send none
        if origin in self.settings.allowed_origins:
            return
        if host and urlsplit(origin).netloc == host:
            return
        raise Forbidden("origin not allowed")
