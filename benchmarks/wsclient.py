"""A minimal RFC 6455 client for the load generator, and the dialects it speaks.

Why hand-rolled: the generator must stay much cheaper per delivered frame than the servers it
measures. This client parses server frames (unmasked) with a few byte operations, answers pings
and closes, masks what it sends, and hands each complete message to its dialect. No extensions
(no compression), no fragmentation on send; fragmented server messages are not expected (the
servers measured never fragment small frames) and count as protocol errors.

Dialects turn the target's wire protocol into four callbacks on the `Peer` (the worker):
`peer.ready(conn)`, `peer.event(seq, now_ns)`, `peer.ack(conn, request_id, seq, now_ns)`,
`peer.failed(conn, request_id, code)`.

- `GiftcastDialect`: giftcast's own protocol (docs/protocol.md), msgpack (the default
  subprotocol) or JSON. The floor and the two baselines in benchmarks/baselines/ speak the same
  frames, so one dialect drives them all.
- `SocketIODialect`: Engine.IO v4 / Socket.IO v5 over a raw WebSocket
  (`/socket.io/?EIO=4&transport=websocket`): "0{open}" → "40{auth}" → "40{sid}"; events
  `42["gift",{...}]`, acks `42<id>[...]` / `43<id>[...]`, pings "2" answered with "3".
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any, Protocol

import msgpack
from websockets.speedups import apply_mask

__all__ = ["Dialect", "GiftcastDialect", "SocketIODialect", "WsConn", "dialect_for"]

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10
FIRST_GIFT_ID = 100  # request ids 0..99 are the connection's joins (a connection joins at most 8)


class Peer(Protocol):
    def ready(self, conn: WsConn) -> None: ...
    def event(self, seq: int, now_ns: int) -> None: ...
    def seen(self, seq: int) -> None: ...
    def ack(self, conn: WsConn, request_id: int, seq: int, now_ns: int) -> None: ...
    def failed(self, conn: WsConn, request_id: int | None, code: str) -> None: ...
    def closed(self, conn: WsConn, code: int | None) -> None: ...


class WsConn(asyncio.Protocol):
    """One client WebSocket. `opened` resolves when the dialect says the connection is ready
    (joined its rooms), or fails with the reason. Gifts go to `rooms` in turn."""

    def __init__(self, dialect: Dialect, peer: Peer, host: str, port: int, token: str, rooms: list[str],
                 clock: Any) -> None:
        self.dialect = dialect
        self.peer = peer
        self.token = token
        self.rooms = rooms
        self.joins_pending = len(rooms)
        self.clock = clock  # time.monotonic_ns: one reading per received chunk
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.close_code: int | None = None
        self.inflight: dict[int, int] = {}  # request id → send time (ns), for senders
        self.next_id = FIRST_GIFT_ID  # lower ids are the joins
        # giftcast resume: the last room event seen (epoch, seq), sent as `since` on a rejoin
        self.position: tuple[str, int] | None = None
        self.since: tuple[str, int] | None = None
        self.resumed: bool | None = None  # the joined reply's verdict on `since`
        self.bytes_in = 0  # every byte received (the throttle measures a connection's rate with it)
        # Throttled reading (loadgen's `throttle`): bytes this connection may still read; reading
        # pauses when it is spent and the worker's meter resumes it. None: read freely.
        self.credit: float | None = None
        self._buf = b""
        self._host = f"{host}:{port}"

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        path, headers = self.dialect.handshake(self)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {self._host}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 *(f"{k}: {v}" for k, v in headers.items()), "", ""]
        transport.write("\r\n".join(lines).encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.credit is not None:
            self.credit -= len(data)
            if self.credit <= 0 and self.transport is not None and not self.transport.is_closing():
                self.transport.pause_reading()
        buf = self._buf + data if self._buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self._fail(f"handshake refused: {status.decode(errors='replace')}")
                return
            self.upgraded = True
            buf = buf[end + 4:]
            self.dialect.on_open(self)
        now = self.clock()
        n = len(buf)
        i = 0
        on_message = self.dialect.on_message
        while n - i >= 2:
            ln = buf[i + 1] & 0x7F
            h = 2
            if ln == 126:
                if n - i < 4:
                    break
                ln = int.from_bytes(buf[i + 2:i + 4], "big")
                h = 4
            elif ln == 127:
                if n - i < 10:
                    break
                ln = int.from_bytes(buf[i + 2:i + 10], "big")
                h = 10
            end = i + h + ln
            if end > n:
                break
            op = buf[i] & 0x0F
            if op == OP_BINARY or op == OP_TEXT:
                on_message(self, buf[i + h:end], now)
            else:
                self._control(op, buf[i + h:end])
            i = end
        self._buf = buf[i:] if i < n else b""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost before ready: {exc!r}"))
        self.peer.closed(self, self.close_code)

    # -- sending --------------------------------------------------------------------------------

    def send(self, payload: bytes, op: int = OP_BINARY) -> None:
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | op, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | op, 0xFE)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | op, 0xFF)) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        assert self.transport is not None
        self.transport.write(head + mask + apply_mask(payload, mask))

    def close(self, code: int = 1000) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.send(code.to_bytes(2, "big"), OP_CLOSE)
            self.transport.close()

    def _control(self, op: int, payload: bytes) -> None:
        if op == OP_PING:
            self.send(payload, OP_PONG)
        elif op == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close(self.close_code if self.close_code in (1000, 1001) else 1000)

    def joined(self) -> None:
        """One join confirmed; the last one opens the connection."""
        self.joins_pending -= 1
        if self.joins_pending == 0 and not self.opened.done():
            self.opened.set_result(None)
            self.peer.ready(self)

    def room_for(self, request_id: int) -> str:
        return self.rooms[request_id % len(self.rooms)]

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
        if self.transport is not None:
            self.transport.close()


class Dialect(Protocol):
    name: str

    def handshake(self, conn: WsConn) -> tuple[str, dict[str, str]]: ...
    def on_open(self, conn: WsConn) -> None: ...
    def on_message(self, conn: WsConn, payload: bytes, now: int) -> None: ...
    def send_gift(self, conn: WsConn, request_id: int, key: str) -> None: ...


class GiftcastDialect:
    """giftcast frames (docs/protocol.md); `fmt` is "msgpack" (binary) or "json" (text)."""

    SUBPROTOCOLS = {"msgpack": "giftcast.msgpack.v1", "json": "giftcast.json.v1"}

    def __init__(self, fmt: str = "msgpack", gift_id: str = "rose") -> None:
        self.name = f"giftcast-{fmt}"
        self.fmt = fmt
        self.gift_id = gift_id

    def handshake(self, conn: WsConn) -> tuple[str, dict[str, str]]:
        return "/ws", {"Authorization": f"Bearer {conn.token}",
                       "Sec-WebSocket-Protocol": self.SUBPROTOCOLS[self.fmt]}

    def _send(self, conn: WsConn, frame: dict[str, Any]) -> None:
        if self.fmt == "msgpack":
            conn.send(msgpack.packb(frame))
        else:
            conn.send(json.dumps(frame, separators=(",", ":")).encode(), OP_TEXT)

    def on_open(self, conn: WsConn) -> None:
        for i, room in enumerate(conn.rooms):
            join: dict[str, Any] = {"t": "join", "id": i, "room": room}
            if conn.since is not None:
                join["since"] = {"epoch": conn.since[0], "seq": conn.since[1]}
            self._send(conn, join)

    def send_gift(self, conn: WsConn, request_id: int, key: str) -> None:
        self._send(conn, {"t": "gift", "id": request_id, "room": conn.room_for(request_id),
                          "gift_id": self.gift_id, "count": 1, "key": key})

    def on_message(self, conn: WsConn, payload: bytes, now: int) -> None:
        msg = msgpack.unpackb(payload) if self.fmt == "msgpack" else json.loads(payload)
        t = msg["t"]
        if t == "gift":
            conn.position = (msg["epoch"], msg["seq"])
            conn.peer.event(msg["seq"], now)
        elif t == "ack":
            conn.peer.ack(conn, msg["id"], msg["receipt"]["seq"], now)
        elif t == "joined":
            conn.resumed = msg.get("resumed")
            at = msg if conn.resumed else msg.get("snapshot", {})
            if conn.position is None and "seq" in at:
                conn.position = (at.get("epoch", ""), at["seq"])
            conn.joined()
        elif t == "error":
            if not conn.opened.done():
                conn.opened.set_exception(ConnectionError(f"join failed: {msg.get('code')}"))
            else:
                conn.peer.failed(conn, msg.get("id"), msg.get("code", "?"))
        elif "seq" in msg and "epoch" in msg:  # another room event (streak_end, live, goal): takes a seq too
            conn.position = (msg["epoch"], msg["seq"])
            conn.peer.seen(msg["seq"])


class SocketIODialect:
    """Socket.IO v5 over Engine.IO v4, WebSocket transport only, JSON packets (the default)."""

    name = "socketio"

    def __init__(self, gift_id: str = "rose") -> None:
        self.gift_id = gift_id
        self._loads = json.loads

    def handshake(self, conn: WsConn) -> tuple[str, dict[str, str]]:
        return "/socket.io/?EIO=4&transport=websocket", {}

    def on_open(self, conn: WsConn) -> None:
        pass  # the server speaks first: Engine.IO "0{...}"

    def _emit(self, conn: WsConn, request_id: int, event: str, data: dict[str, Any]) -> None:
        conn.send(f"42{request_id}".encode() + json.dumps([event, data], separators=(",", ":")).encode(), OP_TEXT)

    def send_gift(self, conn: WsConn, request_id: int, key: str) -> None:
        self._emit(conn, request_id, "gift", {"room": conn.room_for(request_id), "gift_id": self.gift_id,
                                              "count": 1, "key": key})

    def on_message(self, conn: WsConn, payload: bytes, now: int) -> None:
        if payload[:3] == b'42[':
            name, data = self._loads(payload[2:])[:2]
            if name == "gift":
                conn.peer.event(data["seq"], now)
        elif payload[:2] == b"43":
            bracket = payload.index(b"[")
            request_id = int(payload[2:bracket])
            reply = self._loads(payload[bracket:])[0]
            if request_id < FIRST_GIFT_ID:  # a join
                conn.joined()
            elif "error" in reply:
                conn.peer.failed(conn, request_id, reply["error"])
            else:
                conn.peer.ack(conn, request_id, reply["seq"], now)
        elif payload == b"2":
            conn.send(b"3", OP_TEXT)
        elif payload[:1] == b"0":
            conn.send(b"40" + json.dumps({"token": conn.token}).encode(), OP_TEXT)
        elif payload[:2] == b"40":
            for i, room in enumerate(conn.rooms):
                self._emit(conn, i, "join", {"room": room})
        elif payload[:2] == b"44":
            conn._fail(f"socket.io connect refused: {payload[2:].decode(errors='replace')}")


def dialect_for(name: str) -> Dialect:
    if name == "socketio":
        return SocketIODialect()
    if name.startswith("giftcast"):
        return GiftcastDialect(name.partition("-")[2] or "msgpack")
    raise ValueError(f"unknown dialect {name!r}")
