"""The frame codec, with no event loop: bytes/text in, typed frames or typed errors out."""

import json

import msgpack
import pytest

from server import codec

MAX = 9_999


def gift_frame(**overrides):
    frame = {"t": "gift", "id": 7, "room": "alice", "gift_id": "rose", "count": 3, "key": "k-1"}
    frame.update(overrides)
    return frame


def error_code(message) -> str:
    with pytest.raises(codec.FrameError) as info:
        codec.decode(message, max_count=MAX)
    return info.value.error.code


def test_msgpack_gift_frame_decodes_to_send_gift():
    frame = codec.decode(msgpack.packb(gift_frame()), max_count=MAX)
    assert frame == codec.SendGift(7, "alice", "rose", 3, "k-1")


def test_json_text_frame_decodes_like_msgpack():
    assert codec.decode(json.dumps(gift_frame()), max_count=MAX) == codec.decode(
        msgpack.packb(gift_frame()), max_count=MAX)


def test_join_leave_and_ping_decode():
    assert codec.decode(json.dumps({"t": "join", "room": "bob"}), max_count=MAX) == codec.Join(None, "bob")
    assert codec.decode(json.dumps({"t": "leave", "id": "x", "room": "bob"}), max_count=MAX) == codec.Leave("x", "bob")
    assert codec.decode(json.dumps({"t": "ping", "id": 1}), max_count=MAX) == codec.Ping(1)


@pytest.mark.parametrize("count", [0, -1, MAX + 1, 2**64 - 1, 10**30, 1.0, 2.5, "3", True, None, [1]])
def test_bad_counts_are_invalid_count_in_json(count):
    assert error_code(json.dumps(gift_frame(count=count))) == "invalid_count"


@pytest.mark.parametrize("count", [0, -(2**63), 2**64 - 1, 1.0, float("nan"), b"\x01"])
def test_bad_counts_are_invalid_count_in_msgpack(count):
    assert error_code(msgpack.packb(gift_frame(count=count))) == "invalid_count"


def test_largest_allowed_count_is_accepted():
    assert codec.decode(json.dumps(gift_frame(count=MAX)), max_count=MAX).count == MAX


@pytest.mark.parametrize("message", [b"\xc1", b"", "not json", "{", b"\x92\x01"])
def test_garbage_is_malformed_frame(message):
    assert error_code(message) == "malformed_frame"


def test_non_map_frame_is_malformed():
    assert error_code(json.dumps([1, 2, 3])) == "malformed_frame"


def test_deeply_nested_json_is_malformed_not_a_crash():
    assert error_code("[" * 200_000 + "]" * 200_000) == "malformed_frame"


def test_msgpack_extension_type_is_refused():
    assert error_code(msgpack.packb({"t": "gift", "count": msgpack.ExtType(1, b"x")})) == "malformed_frame"


def test_msgpack_huge_declared_container_is_malformed():
    # An array header declaring 2**32-1 elements with no body.
    assert error_code(b"\xdd\xff\xff\xff\xff") == "malformed_frame"


def test_unknown_frame_type_keeps_the_request_id():
    with pytest.raises(codec.FrameError) as info:
        codec.decode(json.dumps({"t": "steal", "id": 42}), max_count=MAX)
    assert (info.value.error.code, info.value.request_id) == ("unknown_frame_type", 42)


def test_missing_type_is_malformed():
    assert error_code(json.dumps({"room": "alice"})) == "malformed_frame"


@pytest.mark.parametrize("key", ["", "x" * 65, "has space", 12, None])
def test_bad_idempotency_key_is_refused(key):
    assert error_code(json.dumps(gift_frame(key=key))) == "invalid_idempotency_key"


@pytest.mark.parametrize("field,value", [("room", "../etc"), ("room", 5), ("gift_id", "Rose!"), ("gift_id", None)])
def test_bad_room_or_gift_id_is_invalid_field(field, value):
    assert error_code(json.dumps(gift_frame(**{field: value}))) == "invalid_field"


@pytest.mark.parametrize("request_id", [1.5, 2**60, "x" * 65, [1]])
def test_bad_request_id_is_invalid_field(request_id):
    assert error_code(json.dumps(gift_frame(id=request_id))) == "invalid_field"


def test_encode_msgpack_and_json_round_trip():
    frame = {"t": "ack", "id": 1, "receipt": {"balance": 5}}
    assert msgpack.unpackb(codec.encode(frame, "msgpack")) == frame
    assert json.loads(codec.encode(frame, "json")) == frame


def test_fingerprint_names_room_gift_and_count():
    assert codec.SendGift(1, "alice", "rose", 3, "k").fingerprint != codec.SendGift(1, "alice", "rose", 4, "k").fingerprint


def test_join_with_since_decodes_the_resume_position():
    frame = codec.decode(msgpack.packb({"t": "join", "id": 1, "room": "bob", "since": {"epoch": "17640", "seq": 42}}),
                         max_count=MAX)
    assert frame == codec.Join(1, "bob", codec.Since("17640", 42))


@pytest.mark.parametrize("since", [
    5, "17640:3", [], {"seq": 3}, {"epoch": "17640"}, {"epoch": 17640, "seq": 3}, {"epoch": "e e", "seq": 3},
    {"epoch": "x" * 65, "seq": 3}, {"epoch": "17640", "seq": -1}, {"epoch": "17640", "seq": 2**53},
    {"epoch": "17640", "seq": 1.0}, {"epoch": "17640", "seq": True}, {"epoch": "17640", "seq": "3"},
])
def test_bad_since_is_invalid_field_with_the_request_id(since):
    with pytest.raises(codec.FrameError) as info:
        codec.decode(json.dumps({"t": "join", "id": 9, "room": "bob", "since": since}), max_count=MAX)
    assert (info.value.error.code, info.value.request_id) == ("invalid_field", 9)


@pytest.mark.parametrize("message,request_id", [
    (msgpack.packb({"t": "gift", "id": 7}), 7),
    ('{"t": "ping", "id": "a1"}', "a1"),
    ('{"t": "ping"}', None),
    (b"\xc1\xc1", None),
    ("[1, 2]", None),
    ('{"id": 1.5}', None),
])
def test_peek_request_id_reads_the_id_or_gives_none(message, request_id):
    assert codec.peek_request_id(message) == request_id
