"""Fuzzing the frame decoder (pure, no loop): whatever bytes or text arrive, `codec.decode`
either returns a frame whose every field obeys docs/protocol.md or raises `codec.FrameError`
carrying a BadRequest leaf. Nothing else may escape: not a msgpack or JSON exception, not a
RecursionError, not a TypeError from an unhashable key."""

from __future__ import annotations

import json
import re

import msgpack
from hypothesis import given, settings, strategies as st

from server import codec
from server.errors import BadRequest

MAX_COUNT = 9999
ROOM = re.compile(r"[A-Za-z0-9_-]{1,64}")
GIFT = re.compile(r"[a-z0-9_]{1,40}")
KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

FIELDS = ("t", "id", "room", "gift_id", "count", "key")
TYPES = ("gift", "join", "leave", "ping")

big_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
scalars = (st.none() | st.booleans() | big_ints | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=80) | st.binary(max_size=80))
near_valid = (st.sampled_from(["alice", "alice\n", "rose", "k1", "k1\n", "", " ", "a" * 65, "é", "\x00"])
              | st.integers(-2, MAX_COUNT + 2))
extensions = (st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=16))
              | st.builds(msgpack.Timestamp, st.integers(0, 2**33), st.integers(0, 999_999_999)))  # ext -1
leaf = scalars | near_valid | extensions
values = st.recursive(leaf, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(
    st.text(max_size=8) | st.sampled_from(FIELDS), inner, max_size=6), max_leaves=40)
fields = near_valid | values  # mostly almost-right values, where validation bugs hide
frames = st.fixed_dictionaries({"t": st.sampled_from(TYPES) | values}, optional={name: fields for name in FIELDS[1:]})

json_leaf = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=80)
             | near_valid)
json_values = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(
    st.text(max_size=8) | st.sampled_from(FIELDS), inner, max_size=6), max_leaves=40)
json_frames = st.fixed_dictionaries({"t": st.sampled_from(TYPES) | json_values},
                                    optional={name: near_valid | json_values for name in FIELDS[1:]})


def check(message: bytes | str) -> None:
    """The decoder's whole contract for one message."""
    try:
        frame = codec.decode(message, max_count=MAX_COUNT)
    except codec.FrameError as exc:
        assert isinstance(exc.error, BadRequest)
        assert exc.request_id is None or type(exc.request_id) in (int, str)
        return
    assert frame.id is None or (type(frame.id) is int and abs(frame.id) < 2**53) or (
        isinstance(frame.id, str) and len(frame.id) <= 64)
    if isinstance(frame, (codec.Join, codec.Leave, codec.SendGift)):
        assert ROOM.fullmatch(frame.room), frame
    if isinstance(frame, codec.SendGift):
        assert GIFT.fullmatch(frame.gift_id) and KEY.fullmatch(frame.key), frame
        assert type(frame.count) is int and 1 <= frame.count <= MAX_COUNT


def pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data):
    check(data)


@settings(max_examples=300)
@given(st.text(max_size=600))
def test_arbitrary_text(text):
    check(text)


@settings(max_examples=300)
@given(frames)
def test_frame_shaped_msgpack_with_hostile_field_values(frame):
    check(pack(frame))


@settings(max_examples=300)
@given(json_frames)
def test_frame_shaped_json_with_hostile_field_values(frame):
    check(json.dumps(frame))


@settings(max_examples=200)
@given(frames, st.data())
def test_truncated_msgpack_frames(frame, data):
    packed = pack(frame)
    check(packed[: data.draw(st.integers(0, len(packed)))])


@settings(max_examples=200)
@given(json_frames, st.data())
def test_truncated_json_frames(frame, data):
    text = json.dumps(frame)
    check(text[: data.draw(st.integers(0, len(text)))])


@settings(max_examples=200)
@given(frames, st.data())
def test_bit_flipped_msgpack_frames(frame, data):
    packed = bytearray(pack(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        packed[data.draw(st.integers(0, len(packed) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    check(bytes(packed))


@settings(max_examples=50)
@given(st.integers(1, 200_000), st.sampled_from([b"\x91", b"\x81\xa1t", b"\xdd\x00\x00\x00\x01"]))
def test_deeply_nested_msgpack(depth, opener):
    check(opener * depth + b"\xc0")


@settings(max_examples=50)
@given(st.integers(1, 200_000), st.sampled_from(["[", '{"t":']))
def test_deeply_nested_json(depth, opener):
    check(opener * depth)


def test_declared_huge_containers_are_refused_without_allocating():
    # A 5-byte header declaring 4 billion elements, strings or bytes must fail fast.
    for header in (b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff",
                   b"\xc6\xff\xff\xff\xff", b"\xc9\xff\xff\xff\xff\x01"):
        check(header)


def test_huge_json_numbers_are_typed_errors():
    for count in ("1" * 5000, "1e400", "-0", "9" * 40, "1.0"):
        check(f'{{"t":"gift","room":"a","gift_id":"rose","key":"k","count":{count}}}')


def test_a_trailing_newline_does_not_pass_as_a_name():
    # Found by the fuzzer: `^...$` with re.match accepts "alice\n"; names must match whole.
    for frame in ({"t": "join", "room": "alice\n"},
                  {"t": "gift", "room": "alice", "gift_id": "rose\n", "count": 1, "key": "k"},
                  {"t": "gift", "room": "alice", "gift_id": "rose", "count": 1, "key": "k\n"}):
        for message in (pack(frame), json.dumps(frame)):
            check(message)
            try:
                codec.decode(message, max_count=MAX_COUNT)
            except codec.FrameError:
                continue
            raise AssertionError(f"{frame} was accepted")
