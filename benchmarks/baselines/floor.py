"""The floor: the least a Python fan-out server can do per delivery on uvloop.

Hand-rolled WebSocket (handshake, masked client frames, ping/close answered), one room. Each
event is encoded once into one complete frame; that same `bytes` is appended to every member's
outbox, and one callback per loop tick writes each dirty member's outbox with a single
`transport.write()` (frames piling up within a tick leave together). No heartbeat and no
limits but one: a member with more than 1 MiB unsent is dropped (as giftcast cuts it), so an
overloaded floor cannot eat the machine's memory. It is a cost floor, not a server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

import msgpack
import uvloop
from websockets.speedups import apply_mask

from benchmarks.baselines.common import SUBPROTOCOL, Room, parse_args, reply_for

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LIMIT = 1024 * 1024  # giftcast's default GIFTCAST_OUTBOX_LIMIT_BYTES


def frame(payload: bytes, op: int = 2) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | op, n)) + payload
    if n < 65536:
        return bytes((0x80 | op, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | op, 127)) + n.to_bytes(8, "big") + payload


class Hub:
    def __init__(self) -> None:
        self.room = Room()
        self.members: set[Floor] = set()
        self.dirty: list[Floor] = []
        self.loop = asyncio.get_event_loop()

    def queue(self, member: Floor, data: bytes) -> None:
        if not member.outbox:
            if not self.dirty:
                self.loop.call_soon(self.flush)
            self.dirty.append(member)
        member.outbox.append(data)

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        for member in dirty:
            out, member.outbox = member.outbox, []
            transport = member.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > LIMIT:
                transport.abort()
                continue
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    def broadcast(self, data: bytes) -> None:
        for member in self.members:
            self.queue(member, data)


class Floor(asyncio.Protocol):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.buf = b""
        self.open = False
        self.outbox: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.members.discard(self)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            headers = {}
            for line in buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            accept = base64.b64encode(hashlib.sha1(headers[b"sec-websocket-key"] + GUID).digest())
            proto = f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n".encode() \
                if SUBPROTOCOL.encode() in headers.get(b"sec-websocket-protocol", b"") else b""
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n" + proto + b"\r\n")
            self.open = True
            buf = buf[end + 4:]
        i, n = 0, len(buf)
        while n - i >= 6:
            ln, h = buf[i + 1] & 0x7F, 2
            if ln == 126:
                ln, h = int.from_bytes(buf[i + 2:i + 4], "big"), 4
            elif ln == 127:
                ln, h = int.from_bytes(buf[i + 2:i + 10], "big"), 10
            if n - i < h + 4 + ln:
                break
            payload = apply_mask(buf[i + h + 4:i + h + 4 + ln], buf[i + h:i + h + 4])
            self.on_frame(buf[i] & 0x0F, payload)
            i += h + 4 + ln
        self.buf = buf[i:]

    def on_frame(self, op: int, payload: bytes) -> None:
        if op == 8:
            self.transport.write(frame(payload[:2], 8))
            self.transport.close()
        elif op == 9:
            self.hub.queue(self, frame(payload, 10))
        elif op in (1, 2):
            message = msgpack.unpackb(payload)
            if message.get("t") == "gift":
                event, ack = self.hub.room.gift(message)
                self.hub.broadcast(frame(event))
                self.hub.queue(self, frame(ack))
            else:
                if message.get("t") == "join":
                    self.hub.members.add(self)
                self.hub.queue(self, frame(reply_for(self.hub.room, message)))


async def main(port: int) -> None:
    hub = Hub()
    server = await asyncio.get_running_loop().create_server(lambda: Floor(hub), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(parse_args().port))
