"""RoomHub (server/hub.py): membership, fan-out, holds and floors, to real WebSocket clients (no
broker here; the hub + broker on a real Valkey are in test_broker.py, gap recovery end to end in
test_resume.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect

import server.frames
from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.connection import CLOSE_TOO_SLOW
from server.economy import price_gift
from server.errors import TooManyRooms
from server.frames import SharedFrame, encode_frame
from server.history import RoomHistory
from server.hub import RoomHub
from server.settings import Settings

JSON = ["giftcast.json.v1"]


async def recv_event(ws: ClientConnection) -> Any:
    async with asyncio.timeout(5):
        message = await ws.recv()
    return json.loads(message) if isinstance(message, str) else msgpack.unpackb(message)


async def open_clients(srv: Any, count: int, **kwargs: Any) -> list[tuple[ClientConnection, Any]]:
    """`count` connected clients with their server-side Connection."""
    pairs = []
    for _ in range(count):
        ws = await connect(srv.url(), **kwargs)
        pairs.append((ws, await srv.gateway.accepted.get()))
    return pairs


async def test_dispatch_reaches_every_member_in_order(start_ws_server) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    clients = await open_clients(srv, 10) + await open_clients(srv, 10, subprotocols=JSON)
    for _, conn in clients:
        await hub.join("alice", conn)

    for seq in range(200):
        assert hub.dispatch("alice", {"t": "gift", "seq": seq}) == 20

    for ws, _ in clients:
        assert [(await recv_event(ws))["seq"] for _ in range(200)] == list(range(200))
        await ws.close()


async def test_dispatch_encodes_once_per_format_for_the_whole_room(
    start_ws_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    clients = await open_clients(srv, 5) + await open_clients(srv, 5, subprotocols=JSON)
    for _, conn in clients:
        await hub.join("alice", conn)
    calls: list[str] = []

    def counting_encode(event: dict[str, Any], fmt: str) -> bytes:
        calls.append(fmt)
        return encode_frame(event, fmt)

    monkeypatch.setattr(server.frames, "encode_frame", counting_encode)
    hub.dispatch("alice", {"t": "gift", "seq": 1})

    assert sorted(calls) == ["json", "msgpack"]
    for ws, _ in clients:
        assert await recv_event(ws) == {"t": "gift", "seq": 1}
        await ws.close()


async def test_dispatch_to_a_room_without_local_members_sends_nothing() -> None:
    assert RoomHub(Settings()).dispatch("nobody", {"t": "gift"}) == 0


async def test_members_and_local_rooms_follow_joins_and_leaves(start_ws_server) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    (ws1, a), (ws2, b) = await open_clients(srv, 2)
    await hub.join("alice", a)
    await hub.join("alice", b)
    await hub.join("bob", b)
    assert (hub.members("alice"), hub.members("bob")) == (2, 1)
    assert hub.local_rooms() == {"alice", "bob"}

    hub.leave("alice", a)
    hub.leave("bob", b)
    assert (hub.members("alice"), hub.members("bob")) == (1, 0)
    assert hub.local_rooms() == {"alice"}
    await ws1.close()
    await ws2.close()


async def test_leave_all_takes_a_connection_out_of_every_room(start_ws_server) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    [(ws, conn)] = await open_clients(srv, 1)
    for room in ("alice", "bob", "carol"):
        await hub.join(room, conn)
    hub.leave_all(conn)
    assert hub.local_rooms() == frozenset()
    assert hub.rooms_of(conn) == frozenset()
    await ws.close()


async def test_a_closed_connection_leaves_its_rooms_through_on_close(start_ws_server) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    async with connect(srv.url()) as ws:
        await ws.send("join:alice")
        assert await recv_event(ws) == {"t": "joined", "room": "alice"}
        assert hub.members("alice") == 1
    async with asyncio.timeout(5):
        await srv.gateway.closed.get()
    assert hub.members("alice") == 0


async def test_joining_past_the_room_limit_raises_too_many_rooms(start_ws_server) -> None:
    hub = RoomHub(Settings(max_rooms_per_connection=2))
    srv = await start_ws_server(hub=hub)
    [(ws, conn)] = await open_clients(srv, 1)
    await hub.join("alice", conn)
    await hub.join("bob", conn)
    await hub.join("bob", conn)  # already in: not a third room
    with pytest.raises(TooManyRooms):
        await hub.join("carol", conn)
    assert hub.rooms_of(conn) == {"alice", "bob"}
    await ws.close()


async def test_a_member_that_left_gets_no_more_room_events(start_ws_server) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    [(ws, conn)] = await open_clients(srv, 1)
    await hub.join("alice", conn)
    hub.dispatch("alice", {"seq": 1})
    hub.leave("alice", conn)
    hub.dispatch("alice", {"seq": 2})
    conn.send({"t": "marker"})  # anything queued after the leave comes next
    assert await recv_event(ws) == {"seq": 1}
    assert await recv_event(ws) == {"t": "marker"}
    await ws.close()


async def test_a_held_member_gets_the_buffered_events_beyond_its_read_after_the_reply(start_ws_server) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    [(ws, conn)] = await open_clients(srv, 1)
    await hub.join("alice", conn, hold=True)
    for seq in range(1, 6):
        hub.dispatch("alice", {"seq": seq, "epoch": "e"})
    conn.send({"t": "joined"})
    hub.release("alice", conn, [SharedFrame({"seq": 3, "epoch": "e", "replayed": True})], ("e", 3))
    hub.dispatch("alice", {"seq": 6, "epoch": "e"})

    received = [await recv_event(ws) for _ in range(5)]
    assert received == [{"t": "joined"}, {"seq": 3, "epoch": "e", "replayed": True},
                        {"seq": 4, "epoch": "e"}, {"seq": 5, "epoch": "e"}, {"seq": 6, "epoch": "e"}]
    await ws.close()


async def test_late_copies_of_events_a_member_read_are_dropped_for_that_member_only(start_ws_server) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    (ws_a, a), (ws_b, b) = await open_clients(srv, 2)
    for conn, read_up_to in ((a, 3), (b, 5)):
        await hub.join("alice", conn, hold=True)
        hub.release("alice", conn, [], ("e", read_up_to))
    for seq in (4, 5, 6):  # pub/sub brings 4 and 5 after b's read already had them
        hub.dispatch("alice", {"seq": seq, "epoch": "e"})

    assert [(await recv_event(ws_a))["seq"] for _ in range(3)] == [4, 5, 6]
    assert (await recv_event(ws_b))["seq"] == 6
    await ws_a.close()
    await ws_b.close()


async def test_a_member_held_past_the_buffer_limit_is_cut(start_ws_server) -> None:
    hub = RoomHub(Settings(resume_max_events=3))
    srv = await start_ws_server(hub=hub)
    [(ws, conn)] = await open_clients(srv, 1)
    await hub.join("alice", conn, hold=True)
    for seq in range(1, 5):
        hub.dispatch("alice", {"seq": seq, "epoch": "e"})
    assert conn.close_code == CLOSE_TOO_SLOW
    await ws.close()


async def test_viewer_counts_held_during_a_join_are_coalesced_to_the_latest(start_ws_server) -> None:
    hub = RoomHub(Settings())
    srv = await start_ws_server(hub=hub)
    [(ws, conn)] = await open_clients(srv, 1)
    await hub.join("alice", conn, hold=True)
    for count in (1, 2, 3):
        hub.dispatch_latest("alice", {"t": "viewers", "room": "alice", "count": count})
    hub.release("alice", conn, [], ("e", 0))
    conn.send({"t": "marker"})
    assert [await recv_event(ws), await recv_event(ws)] == [
        {"t": "viewers", "room": "alice", "count": 3}, {"t": "marker"}]
    await ws.close()


async def test_a_held_member_whose_buffer_skips_past_its_read_gets_the_missed_events_from_history(
    start_ws_server, open_room
) -> None:
    hub = RoomHub(Settings())
    hub.attach_history(RoomHistory(open_room.redis, max_events=100), open_room.lives.snapshot)
    srv = await start_ws_server(hub=hub)
    [(ws, conn)] = await open_clients(srv, 1)
    for n in range(6):  # seqs 2..7; the room opened with seq 1
        await open_room.wallets.apply_gift(price_gift(open_room.catalog, Principal("bob", "viewer"),
                                                      SendGift(n, "alice", "rose", 1, f"k{n}"), rate_bp=10_000))
    history = [msgpack.unpackb(fields[b"e"]) for _, fields in await open_room.redis.xrange(keys.live_history("alice"))]
    await hub.join("alice", conn, hold=True)
    for event in history[5:]:  # pub/sub brought 6 and 7 only: 4 and 5 were lost
        hub.dispatch("alice", event)
    hub.release("alice", conn, [], (history[0]["epoch"], 3))

    assert [(await recv_event(ws))["seq"] for _ in range(4)] == [4, 5, 6, 7]
    await ws.close()
