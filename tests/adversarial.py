"""A seeded generator of adversarial WebSocket messages for live-server fuzzing.

Every message stays under the default frame limit and is valid UTF-8 when it is text, so it
must be answered with exactly one reply frame (an error, or a normal reply when a mutation
happens to leave a valid request) and never close the connection. Valid gifts are mixed in on
purpose: every coin they move must be accounted for by an ``ack``.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

import msgpack

NASTY: tuple[Any, ...] = (
    None, True, False, 0, -1, 1.5, math.nan, math.inf, -math.inf, 2**53, 2**64 - 1, -(2**63), "", " ",
    "a" * 4096, "alice\n", "\x00", "é" * 70, "rose;DROP", b"\xff" * 8, [], {}, [[[[]]]], {"t": "gift"},
    [1] * 64, {str(i): i for i in range(64)}, msgpack.ExtType(7, b"xyz"), msgpack.Timestamp(0, 0),
)
FIELDS = ("t", "id", "room", "gift_id", "count", "key")


def _valid(rng: random.Random, rooms: tuple[str, ...], keys: tuple[str, ...]) -> dict[str, Any]:
    kind = rng.choice(("gift", "gift", "gift", "join", "leave", "ping"))
    frame: dict[str, Any] = {"t": kind, "id": rng.randrange(1 << 20)}
    if kind != "ping":
        frame["room"] = rng.choice(rooms)
    if kind == "gift":
        frame.update(gift_id=rng.choice(("rose", "panda", "no_such_gift")), count=rng.randint(1, 3),
                     key=rng.choice(keys))
    return frame


def _encode(rng: random.Random, frame: Any) -> bytes | str:
    if rng.random() < 0.5:
        try:
            return json.dumps(frame)  # NaN/Infinity go out as JSON extensions; json.loads reads them
        except (TypeError, ValueError):
            pass
    return msgpack.packb(frame, use_bin_type=True)


def adversarial_messages(seed: int, count: int, rooms: tuple[str, ...], keys: tuple[str, ...]) -> Iterator[bytes | str]:
    rng = random.Random(seed)
    for _ in range(count):
        roll = rng.random()
        frame = _valid(rng, rooms, keys)
        if roll < 0.15:
            yield _encode(rng, frame)  # valid (or a plain business error)
        elif roll < 0.55:
            for field in rng.sample(FIELDS, rng.randint(1, 3)):
                if rng.random() < 0.2:
                    frame.pop(field, None)
                else:
                    frame[field] = rng.choice(NASTY)
            yield _encode(rng, frame)
        elif roll < 0.65:
            yield rng.randbytes(rng.randint(0, 300))
        elif roll < 0.75:
            packed = msgpack.packb(frame)
            yield packed[: rng.randint(0, len(packed) - 1)]
        elif roll < 0.82:
            text = json.dumps(frame)
            yield text[: rng.randint(0, len(text) - 1)]
        elif roll < 0.88:
            yield rng.choice(("[", "{\"t\":", "\x91")) * rng.randint(100, 10_000)
        elif roll < 0.94:
            yield msgpack.packb(rng.choice(NASTY), use_bin_type=True)  # not a map at all
        else:
            yield _encode(rng, [frame, frame])
