"""A giftcast WebSocket test client: requests with ids, replies matched by id, room events queued."""

from __future__ import annotations

import asyncio
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
    errors to frames whose id could not be read) goes to `events`. `frames` keeps every frame in
    arrival order."""

    def __init__(self, ws: ClientConnection, fmt: str = MSGPACK) -> None:
        self.ws, self.fmt = ws, fmt
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[dict[str, Any]] = []
        self.replies: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, ws_url: str, token: str, fmt: str = MSGPACK) -> Client:
        return await open_client(ws_url, token, fmt)

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                frame = msgpack.unpackb(message) if isinstance(message, bytes) else json.loads(message)
                self.frames.append(frame)
                waiter = self.replies.get(frame.get("id"))
                if frame["t"] in REPLY_TYPES and waiter is not None and not waiter.done():
                    waiter.set_result(frame)
                else:
                    await self.events.put(frame)
        except ConnectionClosed:
            pass  # closed without 1000/1001 (e.g. 1012): `ws.close_code` tells which
        finally:
            for waiter in self.replies.values():  # closed: no reply will come
                if not waiter.done():
                    waiter.set_exception(ConnectionError(f"closed ({self.ws.close_code}) before the reply"))

    def encode(self, frame: dict[str, Any]) -> bytes | str:
        return msgpack.packb(frame) if self.fmt == MSGPACK else json.dumps(frame)

    async def request(self, **frame: Any) -> dict[str, Any]:
        self._next += 1
        frame["id"] = self._next
        waiter = self.replies[self._next] = asyncio.get_running_loop().create_future()
        await self.ws.send(self.encode(frame))
        async with asyncio.timeout(10):
            return await waiter

    async def gift(self, room: str = "alice", gift_id: str = "rose", count: Any = 1,
                   key: str | None = None) -> dict[str, Any]:
        return await self.request(t="gift", room=room, gift_id=gift_id, count=count, key=key or uuid.uuid4().hex)

    async def next_event(self, kind: str = "gift") -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                event = await self.events.get()
                if event["t"] == kind:
                    return event

    async def events_until(self, seq: int) -> list[dict[str, Any]]:
        """Room events with a seq, in arrival order, up to and including `seq`."""
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while not got or got[-1]["seq"] < seq:
                event = await self.events.get()
                if "seq" in event:
                    got.append(event)
        return got

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


async def open_client(ws_url: str, token: str, fmt: str = MSGPACK, join: tuple[str, ...] = (),
                      **connect_options: Any) -> Client:
    """Connect with `token` in the query, negotiate `fmt`, join `join` rooms."""
    ws = await connect(f"{ws_url}?token={token}", subprotocols=[fmt], **connect_options)  # type: ignore[list-item]
    client = Client(ws, fmt)
    for room in join:
        reply = await client.request(t="join", room=room)
        assert reply["t"] == "joined", reply
    return client
