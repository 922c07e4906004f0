"""A real uvicorn on a loopback socket with our WebSocketTransport, and a stand-in for the
session gateway (the real one is server/services.py + server/session.py): the transport's tests
exercise framing, flow control and close codes without the economy behind it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from websockets.datastructures import Headers

from server.auth import bearer_token
from server.connection import Connection
from server.errors import Forbidden, TokenMissing
from server.hub import RoomHub
from server.settings import Settings
from server.ws_transport import WebSocketTransport


class EchoHandler:
    """Stand-in session: "join:<room>" joins the gateway's hub, anything else is echoed back."""

    frame_bucket = None  # no per-user frame rate

    def __init__(self, gateway: EchoGateway, connection: Connection) -> None:
        self.gateway = gateway
        self.connection = connection

    async def on_message(self, message: bytes | str) -> None:
        if isinstance(message, str) and message.startswith("join:"):
            assert self.gateway.hub is not None
            room = message.removeprefix("join:")
            await self.gateway.hub.join(room, self.connection)
            self.connection.send({"t": "joined", "room": room})
            return
        self.connection.send({"t": "echo", "data": message})

    def on_close(self) -> None:
        if self.gateway.hub is not None:
            self.gateway.hub.leave_all(self.connection)
        self.gateway.closed.put_nowait(self.connection)


class EchoGateway:
    """Stand-in for `app_state["giftcast"]`: refuses no token (401) and one origin (403)."""

    FORBIDDEN_ORIGIN = "https://evil.example"

    def __init__(self, settings: Settings, hub: RoomHub | None = None,
                 handler: Callable[[EchoGateway, Connection], Any] = EchoHandler) -> None:
        self.settings = settings
        self.hub = hub
        self.handler = handler
        self.accepted: asyncio.Queue[Connection] = asyncio.Queue()  # in handshake order
        self.closed: asyncio.Queue[Connection] = asyncio.Queue()  # on_close calls, in order

    def open_session(self, request_headers: Headers, query: dict[str, str], connection: Connection) -> Any:
        if bearer_token(request_headers.get("Authorization"), query.get("token")) is None:
            raise TokenMissing()
        if request_headers.get("Origin") == self.FORBIDDEN_ORIGIN:
            raise Forbidden("origin not allowed")
        handler = self.handler(self, connection)
        self.accepted.put_nowait(connection)
        return handler


def gateway_app(gateway: EchoGateway) -> Callable[..., Awaitable[None]]:
    """A bare ASGI app whose lifespan state carries the gateway; plain HTTP gets 404."""

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["giftcast"] = gateway
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return app


@dataclasses.dataclass
class WsServer:
    gateway: EchoGateway
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    def url(self, path: str = "/ws", token: str | None = "t0k3n") -> str:
        return f"ws://127.0.0.1:{self.port}{path}" + (f"?token={token}" if token else "")

    def transports(self) -> list[Any]:
        """The live WebSocketTransport objects (uvicorn's server_state.connections)."""
        return [c for c in self.server.server_state.connections if isinstance(c, WebSocketTransport)]

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task
