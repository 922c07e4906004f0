"""A giftcast WebSocket test client: speaks frames, sorts replies (by id) from room events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

MSGPACK, JSON = "giftcast.msgpack.v1", "giftcast.json.v1"
REPLY_TYPES = frozenset({"ack", "error", "joined", "left", "pong"})


class Client:
    """Replies to requests with an ``id`` resolve that request; everything else (room events,
    errors to frames whose id could not be read) goes to `events`."""

    def __init__(self, ws: ClientConnection, fmt: str) -> None:
        self.ws, self.fmt = ws, fmt
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._read_frames()
        for waiter in self.replies.values():  # requests still waiting will never get a reply
            if not waiter.done():
                waiter.set_exception(ConnectionError("connection closed before the reply"))

    async def _read_frames(self) -> None:
        async for message in self.ws:
            frame = msgpack.unpackb(message) if isinstance(message, bytes) else json.loads(message)
            waiter = self.replies.get(frame.get("id"))
            if frame["t"] in REPLY_TYPES and waiter is not None and not waiter.done():
                waiter.set_result(frame)
            else:
                await self.events.put(frame)

    def encode(self, frame: dict[str, Any]) -> bytes | str:
        return msgpack.packb(frame) if self.fmt == MSGPACK else json.dumps(frame)

    async def request(self, **frame: Any) -> dict[str, Any]:
        self._next += 1
        frame["id"] = self._next
        waiter = self.replies[self._next] = asyncio.get_running_loop().create_future()
        await self.ws.send(self.encode(frame))
        async with asyncio.timeout(10):
            return await waiter

    async def gift(self, room: str = "alice", gift_id: str = "rose", count: Any = 1, key: str | None = None) -> dict[str, Any]:
        return await self.request(t="gift", room=room, gift_id=gift_id, count=count, key=key or uuid.uuid4().hex)

    async def next_event(self, kind: str = "gift") -> dict[str, Any]:
        async with asyncio.timeout(5):
            while True:
                event = await self.events.get()
                if event["t"] == kind:
                    return event

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def open_client(ws_url: str, token: str, fmt: str = MSGPACK, join: tuple[str, ...] = (),
                      **connect_options: Any) -> Client:
    """Connect with `token` in the query, negotiate `fmt`, join `join` rooms."""
    ws = await connect(f"{ws_url}?token={token}", subprotocols=[fmt], **connect_options)  # type: ignore[list-item]
    client = Client(ws, fmt)
    for room in join:
        reply = await client.request(t="join", room=room)
        assert reply["t"] == "joined", reply
    return client
