"""What the reference servers share: the event they broadcast and the replies they send."""

from __future__ import annotations

import argparse
import time
from typing import Any

import msgpack

__all__ = ["Room", "parse_args", "reply_for"]

SUBPROTOCOL = "giftcast.msgpack.v1"


class Room:
    """One room's sequence counter; builds the event and the ack for each gift."""

    def __init__(self) -> None:
        self.seq = 0

    def gift(self, frame: dict[str, Any]) -> tuple[bytes, bytes]:
        """(event payload, ack payload) for a `gift` frame, both msgpack."""
        self.seq += 1
        ts = int(time.time() * 1000)
        event = {"t": "gift", "room": frame.get("room"), "seq": self.seq, "epoch": "1764000000123456",
                 "ts": ts, "live_id": "1", "from": "viewer-0001", "gift_id": frame.get("gift_id"),
                 "count": frame.get("count"), "coins": 1, "diamonds": 1, "creator_diamonds": self.seq}
        ack = {"t": "ack", "id": frame.get("id"), "room": frame.get("room"),
               "receipt": {"seq": self.seq, "coins_spent": 1, "balance": 0, "diamonds_credited": 1,
                           "creator_diamonds": self.seq, "rate_bp": 10000, "ts": ts, "live_id": "1",
                           "replay": False}}
        return msgpack.packb(event), msgpack.packb(ack)


def reply_for(room: Room, frame: dict[str, Any]) -> bytes:
    """The direct reply to a non-gift frame."""
    if frame.get("t") == "join":
        return msgpack.packb({"t": "joined", "id": frame.get("id"), "room": frame.get("room"),
                              "snapshot": {"room": frame.get("room"), "seq": room.seq}})
    return msgpack.packb({"t": "error", "id": frame.get("id"), "code": "unknown_frame_type"})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args()
