"""Baseline: Starlette WebSockets under uvicorn (ASGI), broadcasting with `await ws.send_bytes`
to each member in turn. This is what a straightforward ASGI implementation does."""

from __future__ import annotations

import msgpack
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from benchmarks.baselines.common import SUBPROTOCOL, Room, parse_args, reply_for

room = Room()
members: set[WebSocket] = set()


async def endpoint(ws: WebSocket) -> None:
    await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in ws.scope.get("subprotocols", ()) else None)
    try:
        while True:
            message = msgpack.unpackb(await ws.receive_bytes())
            if message.get("t") == "gift":
                event, ack = room.gift(message)
                for member in tuple(members):
                    try:
                        await member.send_bytes(event)
                    except (WebSocketDisconnect, RuntimeError, OSError):
                        members.discard(member)
                await ws.send_bytes(ack)
            else:
                if message.get("t") == "join":
                    members.add(ws)
                await ws.send_bytes(reply_for(room, message))
    except WebSocketDisconnect:
        pass
    finally:
        members.discard(ws)


app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=parse_args().port, loop="uvloop", http="httptools",
                log_level="warning", backlog=4096)
