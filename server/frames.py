"""Server WebSocket frames, serialized once and shared by every receiver.

Contracts (docs/fanout.md explains why):

- `encode_frame(event, fmt)` is the complete frame carrying `event` in wire format `fmt`:
  unmasked (a server's frames are) and never compressed (no extension is ever negotiated).
- `SharedFrame` serializes an event at most once per wire format; every receiver of that format
  gets the very same `bytes`.
"""

from __future__ import annotations

from typing import Any

from websockets.frames import Frame, Opcode

from server.codec import Format, encode

__all__ = ["SharedFrame", "encode_frame"]

_NO_EXTENSIONS: list[Any] = []  # compression is never negotiated, so frames can be shared


def _frame_bytes(opcode: Opcode, payload: bytes) -> bytes:
    return Frame(opcode, payload).serialize(mask=False, extensions=_NO_EXTENSIONS)


def encode_frame(event: dict[str, Any], fmt: Format) -> bytes:
    """The complete WebSocket frame carrying `event` in wire format `fmt` (codec.encode)."""
    payload = encode(event, fmt)
    if isinstance(payload, str):
        return _frame_bytes(Opcode.TEXT, payload.encode())
    return _frame_bytes(Opcode.BINARY, payload)


class SharedFrame:
    """One event, serialized lazily and at most once per wire format, for many receivers."""

    __slots__ = ("event", "_msgpack", "_json")

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self._msgpack: bytes | None = None
        self._json: bytes | None = None

    def wire(self, fmt: str) -> bytes:
        """The frame bytes for `fmt` ("msgpack" → binary frame, "json" → text frame); cached."""
        if fmt == "msgpack":
            data = self._msgpack
            if data is None:
                data = self._msgpack = encode_frame(self.event, fmt)
            return data
        data = self._json
        if data is None:
            data = self._json = encode_frame(self.event, fmt)
        return data
