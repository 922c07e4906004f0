"""SharedFrame and encode_frame (server/frames.py): the bytes every receiver shares."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

import server.frames
from server.frames import SharedFrame, encode_frame


def test_shared_frame_encodes_once_per_format(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting_encode(event: dict[str, Any], fmt: str) -> bytes:
        calls.append(fmt)
        return encode_frame(event, fmt)

    monkeypatch.setattr(server.frames, "encode_frame", counting_encode)
    frame = SharedFrame({"t": "gift", "seq": 7})
    first = [frame.wire("msgpack"), frame.wire("json")]
    again = [frame.wire(fmt) for fmt in ("msgpack", "json", "msgpack", "json")]

    assert calls == ["msgpack", "json"]
    assert again[0] is first[0] and again[2] is first[0]
    assert again[1] is first[1] and again[3] is first[1]


def test_shared_frame_is_an_unmasked_complete_frame() -> None:
    payload = msgpack.packb({"t": "gift"})
    # FIN + binary opcode, no mask bit, 7-bit length, then the payload itself.
    assert SharedFrame({"t": "gift"}).wire("msgpack") == bytes([0x82, len(payload)]) + payload
