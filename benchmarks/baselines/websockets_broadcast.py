"""Baseline: the `websockets` library's own asyncio server with `websockets.broadcast()`
(one encoding per event, then a frame written per connection), compression off."""

from __future__ import annotations


import msgpack
import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.typing import Subprotocol

from benchmarks.baselines.common import SUBPROTOCOL, Room, parse_args, reply_for

room = Room()
members: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    try:
        async for raw in ws:
            message = msgpack.unpackb(raw)
            if message.get("t") == "gift":
                event, ack = room.gift(message)
                broadcast(members, event)
                await ws.send(ack)
            else:
                if message.get("t") == "join":
                    members.add(ws)
                await ws.send(reply_for(room, message))
    finally:
        members.discard(ws)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, subprotocols=[Subprotocol(SUBPROTOCOL)],
                     compression=None, ping_interval=20, backlog=4096) as server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(parse_args().port))
