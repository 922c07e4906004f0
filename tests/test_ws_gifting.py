"""End to end over real WebSockets: recharge, join, gift, and everyone in the room sees it."""

import asyncio
import functools

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.factories import make_stores
from tests.ws_client import JSON


@pytest.fixture
def client(live_server, open_client):
    return functools.partial(open_client, live_server)


@pytest.fixture
async def room(live_server, redis):
    stores = make_stores(redis)
    await stores.lives.set_state("alice", "open")
    return stores


async def test_gift_reaches_every_viewer_and_the_overlay_with_a_receipt(room, client):
    await room.set_coins("bob", 100)
    sender = await client("bob")
    viewer = await client("carol", fmt=JSON)
    overlay = await client("alice", "overlay")
    ack = await sender.gift(gift_id="panda", count=2)
    receipt = ack["receipt"]
    assert (ack["t"], receipt["coins_spent"], receipt["balance"], receipt["diamonds_credited"], receipt["rate_bp"]) == (
        "ack", 10, 90, 10, 10_000)
    for member in (sender, viewer, overlay):
        event = await member.next_event()
        assert (event["from"], event["gift_id"], event["count"], event["creator_diamonds"], event["seq"]) == (
            "bob", "panda", 2, 10, receipt["seq"])
        assert event["ts"] > 0


async def test_events_arrive_in_seq_order(room, client):
    await room.set_coins("bob", 100)
    sender = await client("bob")
    viewer = await client("carol")
    acks = await asyncio.gather(*(sender.gift() for _ in range(20)))
    seqs = [(await viewer.next_event())["seq"] for _ in acks]
    assert seqs == sorted(seqs) and len(set(seqs)) == 20


async def test_join_snapshot_shows_totals_and_top_gifters(room, client):
    await room.set_coins("bob", 100)
    await (await client("bob")).gift(count=3)
    joined = await (await client("carol", join=None)).request(t="join", room="alice")
    snapshot = joined["snapshot"]
    assert (snapshot["status"], snapshot["live_coins"], snapshot["top"], snapshot["creator_diamonds"]) == (
        "open", 3, [["bob", 3]], 3)


async def test_retry_with_the_same_key_charges_once_and_broadcasts_once(room, client):
    await room.set_coins("bob", 10)
    sender = await client("bob")
    first = await sender.gift(key="retry-1", count=2)
    again = await sender.gift(key="retry-1", count=2)
    assert again["receipt"]["replay"] and again["receipt"]["seq"] == first["receipt"]["seq"]
    assert (await room.wallets.balances("bob")).coins == 8
    await sender.next_event()
    await sender.request(t="ping")
    assert sender.events.empty()


@pytest.mark.parametrize("frame,code", [
    ({"gift_id": "gold_bar"}, "unknown_gift"),
    ({"count": 0}, "invalid_count"),
    ({"count": -3}, "invalid_count"),
    ({"count": 1.5}, "invalid_count"),
    ({"count": 10**6}, "invalid_count"),
    ({"gift_id": "universe"}, "insufficient_funds"),
    ({"room": "ann"}, "not_in_room"),
])
async def test_bad_gifts_get_typed_errors_and_change_nothing(room, client, frame, code):
    await room.set_coins("bob", 10)
    sender = await client("bob")
    request = {"room": "alice", "gift_id": "rose", "count": 1, "key": "k", **frame}
    reply = await sender.request(t="gift", **request)
    assert (reply["t"], reply["code"]) == ("error", code)
    assert (await room.wallets.balances("bob")).coins == 10


async def test_gift_into_a_closed_room_is_refused(room, client):
    await room.set_coins("bob", 10)
    sender = await client("bob")
    await room.lives.set_state("alice", "closed")
    assert (await sender.gift())["code"] == "room_closed"


async def test_same_key_with_other_parameters_is_an_error(room, client):
    await room.set_coins("bob", 10)
    sender = await client("bob")
    await sender.gift(key="k1", count=1)
    assert (await sender.gift(key="k1", count=2))["code"] == "idempotency_conflict"


async def test_overlay_cannot_send_gifts_or_join_other_rooms(room, client):
    overlay = await client("alice", "overlay")
    assert (await overlay.gift())["code"] == "forbidden"
    assert (await overlay.request(t="join", room="ann"))["code"] == "forbidden"


async def test_creator_cannot_gift_own_room(room, client):
    creator = await client("alice", "creator")
    assert (await creator.gift())["code"] == "self_gift"


async def test_malformed_frames_get_errors_and_the_connection_lives(room, client):
    viewer = await client("carol")
    for garbage in (b"\xc1\xc1", b"\x93\x01\x02\x03", "{not json"):
        await viewer.ws.send(garbage)
        event = await asyncio.wait_for(viewer.events.get(), 5)
        assert (event["t"], event["code"]) == ("error", "malformed_frame")
    assert (await viewer.request(t="ping"))["t"] == "pong"


async def test_unknown_frame_type_is_an_error_with_its_id(room, client):
    viewer = await client("carol")
    assert (await viewer.request(t="withdraw_all"))["code"] == "unknown_frame_type"


async def test_concurrent_gifts_on_many_connections_spend_exactly_the_balance(room, client):
    await room.set_coins("bob", 30)
    senders = [await client("bob") for _ in range(4)]
    replies = await asyncio.gather(*(senders[i % 4].gift() for i in range(80)))
    assert sum(r["t"] == "ack" for r in replies) == 30
    assert {r["code"] for r in replies if r["t"] == "error"} == {"insufficient_funds"}
    assert (await room.wallets.balances("bob")).coins == 0
    assert (await room.wallets.balances("alice")).diamonds == 30
    assert await room.ledger_sum("alice", "diamonds") == 30


@pytest.mark.parametrize("query,headers,status", [
    ("", {}, 401),
    ("?token=gc1.bad.token", {}, 401),
    ("?token=EXPIRED", {}, 401),
    ("?token=VALID", {"Origin": "https://evil.example"}, 403),
])
async def test_handshake_is_refused_without_a_valid_token_or_from_a_foreign_origin(live_server, query, headers, status):
    query = query.replace("EXPIRED", live_server.token("bob", ttl_s=-5)).replace("VALID", live_server.token("bob"))
    with pytest.raises(InvalidStatus) as info:
        await connect(live_server.ws_url + query, additional_headers=headers)
    assert info.value.response.status_code == status


async def test_same_origin_browser_and_bearer_header_are_accepted(live_server):
    origin = f"http://127.0.0.1:{live_server.settings.port}"
    ws = await connect(live_server.ws_url, additional_headers={
        "Origin": origin, "Authorization": f"Bearer {live_server.token('bob')}"})
    await ws.close()


async def test_json_subprotocol_gets_text_frames(room, client):
    viewer = await client("carol", fmt=JSON)
    assert viewer.ws.subprotocol == JSON


async def test_viewer_count_in_snapshot_counts_this_process(room, client):
    await client("bob")
    joined = await (await client("carol", join=None)).request(t="join", room="alice")
    assert joined["snapshot"]["viewers"] == 2
