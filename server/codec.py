"""The frame codec: WebSocket message payloads <-> typed client frames. Pure, never awaits.

Every frame is a map with a type field ``t``. Clients may add ``id`` (an int or a short
string) to a request; the reply carries the same ``id``. Binary messages are msgpack,
text messages are JSON; replies use the format the connection negotiated
(subprotocol ``giftcast.msgpack.v1``, the default, or ``giftcast.json.v1``).
The full protocol is in docs/protocol.md.

Decoding is defensive: anything that is not exactly a frame we understand raises a
`BadRequest` leaf (MalformedFrame, UnknownFrameType, InvalidField, InvalidCount,
InvalidIdempotencyKey) carrying the request id when one could be read.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgpack

from server.errors import (
    BadRequest,
    InvalidCount,
    InvalidField,
    InvalidIdempotencyKey,
    MalformedFrame,
    UnknownFrameType,
)

__all__ = [
    "Format", "SUBPROTOCOLS", "Since", "Join", "Leave", "SendGift", "Ping", "ClientFrame",
    "decode", "encode", "FrameError", "peek_request_id",
]

Format = Literal["msgpack", "json"]
SUBPROTOCOLS: dict[str, Format] = {"giftcast.msgpack.v1": "msgpack", "giftcast.json.v1": "json"}
RequestId = int | str | None

_ROOM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
IDEMPOTENCY_KEY = _KEY  # also the form of the keys HTTP purchases and grants take
_GIFT = re.compile(r"^[a-z0-9_]{1,40}$")
_EPOCH = re.compile(r"^[A-Za-z0-9_-]{0,64}$")
_MAX_ID = 2**53


@dataclasses.dataclass(frozen=True, slots=True)
class Since:
    """A position in a room's event stream: the last event a client applied."""

    epoch: str
    seq: int


@dataclasses.dataclass(frozen=True, slots=True)
class Join:
    id: RequestId
    room: str
    since: Since | None = None  # resume after this position instead of taking a snapshot


@dataclasses.dataclass(frozen=True, slots=True)
class Leave:
    id: RequestId
    room: str


@dataclasses.dataclass(frozen=True, slots=True)
class SendGift:
    id: RequestId
    room: str
    gift_id: str
    count: int
    key: str

    @property
    def fingerprint(self) -> str:
        """What a retry with the same key must repeat exactly."""
        return f"{self.room}|{self.gift_id}|{self.count}"


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    id: RequestId


ClientFrame = Join | Leave | SendGift | Ping


class FrameError(Exception):
    """A decoding failure, with the request id (if readable) to put on the error frame."""

    def __init__(self, error: BadRequest, request_id: RequestId) -> None:
        super().__init__(error.message)
        self.error = error
        self.request_id = request_id


def decode(message: bytes | str, *, max_count: int) -> ClientFrame:
    """Decode one message; raises FrameError wrapping a BadRequest leaf."""
    raw = _parse(message)
    request_id = _request_id(raw)
    try:
        return _build(raw, request_id, max_count)
    except BadRequest as exc:
        raise FrameError(exc, request_id) from None


def peek_request_id(message: bytes | str) -> RequestId:
    """The request id of a message, or None if it has none or cannot be read. Never raises."""
    try:
        return _request_id(_parse(message))
    except FrameError:
        return None


def encode(frame: Mapping[str, Any], fmt: Format) -> bytes | str:
    """Encode a server frame: msgpack bytes, or compact JSON text."""
    if fmt == "msgpack":
        return msgpack.packb(frame, use_bin_type=True)
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


def _parse(message: bytes | str) -> dict[Any, Any]:
    try:
        if isinstance(message, str):
            raw = json.loads(message)
        else:
            # Limits stop a small frame from declaring huge containers; extension types and
            # non-UTF-8 strings are rejected by the type checks and raw=False respectively.
            raw = msgpack.unpackb(
                message, raw=False, strict_map_key=True, max_array_len=64, max_map_len=64,
                max_str_len=4096, max_bin_len=4096, max_ext_len=0,
            )
    except (ValueError, TypeError, RecursionError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError):
        raise FrameError(MalformedFrame("frame is not valid msgpack or JSON"), None) from None
    if not isinstance(raw, dict):
        raise FrameError(MalformedFrame("a frame must be a map"), None)
    return raw


def _request_id(raw: dict[Any, Any]) -> RequestId:
    value = raw.get("id")
    if value is None:
        return None
    if type(value) is int and -_MAX_ID < value < _MAX_ID:
        return value
    if isinstance(value, str) and len(value) <= 64:
        return value
    raise FrameError(InvalidField("id must be an integer or a string of at most 64 characters"), None)


def _build(raw: dict[Any, Any], request_id: RequestId, max_count: int) -> ClientFrame:
    kind = raw.get("t")
    if kind == "gift":
        return SendGift(
            request_id,
            _match(raw, "room", _ROOM, InvalidField),
            _match(raw, "gift_id", _GIFT, InvalidField),
            _count(raw.get("count"), max_count),
            _match(raw, "key", _KEY, InvalidIdempotencyKey),
        )
    if kind == "join":
        return Join(request_id, _match(raw, "room", _ROOM, InvalidField), _since(raw.get("since")))
    if kind == "leave":
        return Leave(request_id, _match(raw, "room", _ROOM, InvalidField))
    if kind == "ping":
        return Ping(request_id)
    if not isinstance(kind, str):
        raise MalformedFrame("a frame needs a string type field 't'")
    raise UnknownFrameType(f"unknown frame type {kind[:32]!r}")


def _match(raw: dict[Any, Any], field: str, pattern: re.Pattern[str], error: type[BadRequest]) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise error(f"{field} is missing or not of the form {pattern.pattern}")
    return value


def _since(value: object) -> Since | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidField("since must be a map {epoch, seq}")
    epoch, seq = value.get("epoch"), value.get("seq")
    if not isinstance(epoch, str) or not _EPOCH.match(epoch):
        raise InvalidField(f"since.epoch is missing or not of the form {_EPOCH.pattern}")
    if type(seq) is not int or not 0 <= seq < _MAX_ID:
        raise InvalidField("since.seq must be an integer from 0 to 2^53 - 1")
    return Since(epoch, seq)


def _count(value: object, max_count: int) -> int:
    # bool is an int subclass and floats like 1.0 are not counts: both are refused.
    if type(value) is not int:
        raise InvalidCount("count must be an integer")
    if not 1 <= value <= max_count:
        raise InvalidCount(f"count must be between 1 and {max_count}")
    return value
