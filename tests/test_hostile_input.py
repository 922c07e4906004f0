"""Hostile input against a live server: every handler fuzzed over real WebSockets, oversized and
non-UTF-8 messages, a client that floods without reading, frame and gift floods past the rate
limits, connection floods from one address, adversarial HTTP bodies. The server answers with a
typed error or closes that one connection; it never crashes, never moves a coin it did not
acknowledge, and other users are unaffected."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from typing import Any

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from server import keys
from server.audit import audit
from server.auth import mint_token
from server.connection import CLOSE_POLICY_VIOLATION, CLOSE_TOO_SLOW
from server.economy import recharge_credit
from server.errors import _BY_CODE
from server.app import ROUTES
from tests.adversarial import adversarial_messages
from tests.conftest import TOKEN_SECRET, wait_until
from tests.factories import make_stores
from tests.processes import server_process
from tests.ws_client import REPLY_TYPES, open_client

ROOMS = ("alice", "ann", "nobody")
KEYS = ("k1", "k2", "k3")
WINDOW = 16  # the server runs up to 16 requests of one connection concurrently


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis)
    await stores.lives.set_state("alice", "open")
    await stores.set_coins("mallory", 500)
    await stores.set_coins("carol", 50)
    return stores


async def replies(ws: Any, count: int) -> list[dict[str, Any]]:
    """The next `count` reply frames on a raw connection (room events are skipped)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while len(out) < count:
            message = await ws.recv()
            frame = msgpack.unpackb(message) if isinstance(message, bytes) else json.loads(message)
            if frame["t"] in REPLY_TYPES:
                out.append(frame)
    return out


async def test_adversarial_frames_get_one_reply_each_and_move_only_acknowledged_coins(start_server, stores):
    live_server = await start_server(frame_rate_per_s=0, user_frame_rate_per_s=0, gift_rate_per_s=0)  # not about rates
    victim = await open_client(live_server.ws_url, live_server.token("carol"), join=("alice",))
    ws = await connect(f"{live_server.ws_url}?token={live_server.token('mallory')}")
    messages = list(adversarial_messages(seed=7, count=1200, rooms=ROOMS, keys=KEYS))
    answered: list[dict[str, Any]] = []
    for start in range(0, len(messages), WINDOW):
        window = messages[start:start + WINDOW]
        for message in window:
            await ws.send(message)
        answered += await replies(ws, len(window))
    codes = {frame["code"] for frame in answered if frame["t"] == "error"}
    assert codes <= set(_BY_CODE) - {"internal"}, codes
    assert {"malformed_frame", "invalid_field", "invalid_count"} <= codes
    spent = sum(f["receipt"]["coins_spent"] for f in answered if f["t"] == "ack" and not f["receipt"]["replay"])
    assert spent > 0  # some mutations left valid gifts: they must be the only coins that moved
    assert (await stores.wallets.balances("mallory")).coins == 500 - spent
    assert (await stores.wallets.balances("alice")).diamonds == spent
    assert (await audit(stores.redis)).ok
    assert (await victim.gift(count=2))["receipt"]["balance"] == 48
    await ws.close()
    await victim.close()


async def test_invalid_utf8_text_closes_only_that_connection_with_1007(live_server, stores):
    victim = await open_client(live_server.ws_url, live_server.token("carol"), join=("alice",))
    ws = await connect(f"{live_server.ws_url}?token={live_server.token('mallory')}")
    await ws.send(b'{"t":"ping","x":"\xff"}', text=True)
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd.code == 1007
    assert (await victim.request(t="ping"))["t"] == "pong"
    await victim.close()


async def test_oversized_message_closes_only_that_connection_with_1009(start_server, stores):
    server = await start_server(max_frame_bytes=4096)
    victim = await open_client(server.ws_url, server.token("carol"), join=("alice",))
    ws = await connect(f"{server.ws_url}?token={server.token('mallory')}", max_size=None)
    await ws.send(msgpack.packb({"t": "ping", "pad": "x" * 5000}))
    with pytest.raises(ConnectionClosed) as closed:
        await ws.recv()
    assert closed.value.rcvd.code == 1009
    assert (await victim.gift())["t"] == "ack"
    await victim.close()


async def test_a_client_flooding_requests_without_reading_is_cut_with_4008_and_others_are_served(start_server, stores):
    server = await start_server(outbox_limit_bytes=32 * 1024, frame_rate_per_s=0,
                                user_frame_rate_per_s=0)  # a reader, not a rate, problem
    victim = await open_client(server.ws_url, server.token("carol"), join=("alice",))
    # The flooder: a tiny receive buffer, and a client that stops reading after one message.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.settings.port))
    flooder = await connect(f"{server.ws_url}?token={server.token('mallory')}", sock=sock, max_queue=1)
    port = sock.getsockname()[1]
    (flooded,) = [t.connection for t in server.server.server_state.connections
                  if getattr(t, "connection", None) and t.connection.remote_address[1] == port]
    ping = msgpack.packb({"t": "ping", "id": "p" * 64})
    async with asyncio.timeout(30):
        while flooded.is_open:
            with contextlib.suppress(ConnectionClosed):
                for _ in range(200):
                    await flooder.send(ping)
            assert (await victim.request(t="ping"))["t"] == "pong"
    assert flooded.close_code == CLOSE_TOO_SLOW
    assert (await victim.gift())["t"] == "ack"
    flooder.transport.abort()
    await victim.close()


async def test_a_frame_flood_is_refused_then_closed_with_1008_and_others_are_served(start_server, stores):
    burst = 5
    server = await start_server(frame_rate_per_s=0.1, frame_burst=burst, frame_flood_limit=10)
    victim = await open_client(server.ws_url, server.token("carol"), join=("alice",))
    flooder = await open_client(server.ws_url, server.token("mallory"), join=("alice",))  # one token
    with contextlib.suppress(ConnectionClosed):
        for i in range(60):
            await flooder.ws.send(flooder.encode(
                {"t": "gift", "id": i, "room": "alice", "gift_id": "rose", "count": 1, "key": f"f{i}"}))
    async with asyncio.timeout(10):
        await flooder.ws.wait_closed()
        await flooder._reader
    assert flooder.ws.close_code == CLOSE_POLICY_VIOLATION
    refused = [f for f in flooder.frames if f["t"] == "error"]
    assert refused and {(f["code"], f["retry_after_ms"] > 0) for f in refused} == {("rate_limited", True)}
    acked = [f for f in flooder.frames if f["t"] == "ack"]
    # The limit held: only the burst's tokens (less the join's) reached the gift handler, and
    # each of those gifts was answered before the close.
    coins, sent = await stores.redis.hmget(keys.wallet("mallory"), ["coins", "gifts_sent"])
    assert 0 < len(acked) == int(sent) <= burst - 1 and int(coins) == 500 - len(acked)
    # The other user, in the same room, is unaffected: served, and no refusal of its own.
    assert (await victim.request(t="ping"))["t"] == "pong"
    assert (await victim.gift())["receipt"]["balance"] == 49
    assert not [f for f in victim.frames if f["t"] == "error"]
    assert (await audit(stores.redis)).ok
    await victim.close()


async def test_a_gift_flood_on_many_connections_of_one_user_holds_the_users_gift_rate(start_server, stores):
    server = await start_server(gift_rate_per_s=0.05, gift_burst=5)  # 5 at once, then one per 20 s
    victim = await open_client(server.ws_url, server.token("carol"), join=("alice",))
    floods = [await open_client(server.ws_url, server.token("mallory"), join=("alice",)) for _ in range(3)]
    answers = await asyncio.gather(*(client.gift() for client in floods for _ in range(10)))
    acked = [r for r in answers if r["t"] == "ack"]
    assert len(acked) == 5 and {r["code"] for r in answers if r["t"] == "error"} == {"rate_limited"}
    assert (await stores.wallets.balances("mallory")).coins == 500 - 5
    assert (await victim.gift())["t"] == "ack"  # another user's rate is untouched
    for client in (victim, *floods):
        await client.close()


async def test_connections_past_the_per_address_limit_get_429_and_other_addresses_connect(start_server, stores):
    server = await start_server(max_connections_per_address=3)
    url = f"{server.ws_url}?token={server.token('mallory')}"
    held = [await connect(url) for _ in range(3)]
    with pytest.raises(InvalidStatus) as refused:
        await connect(url)
    assert refused.value.response.status_code == 429
    assert json.loads(refused.value.response.body)["error"]["code"] == "too_many_connections"
    # Another client address (loopback has all of 127.0.0.0/8) is not affected.
    other = await open_client(server.ws_url, server.token("carol"), join=("alice",), local_addr=("127.0.0.2", 0))
    assert (await other.gift())["t"] == "ack"
    await held.pop().close()
    await wait_until(lambda: server_open_from(server, "127.0.0.1") < 3)
    held.append(await connect(url))
    for ws in held:
        await ws.close()
    await other.close()


async def test_a_connection_flood_from_one_address_leaves_other_addresses_served(start_server, stores):
    """127.0.0.1 holds its limit and keeps hammering handshakes; meanwhile a viewer already
    watching from 127.0.0.3 and a new one connecting from 127.0.0.2 are served as usual."""
    server = await start_server(max_connections_per_address=3)
    watcher = await open_client(server.ws_url, server.token("dave"), join=("alice",), local_addr=("127.0.0.3", 0))
    url = f"{server.ws_url}?token={server.token('mallory')}"
    held = [await connect(url) for _ in range(3)]

    async def flood_handshake() -> int:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url)
        return refused.value.response.status_code

    flood = [asyncio.create_task(flood_handshake()) for _ in range(50)]
    newcomer = await open_client(server.ws_url, server.token("carol"), join=("alice",), local_addr=("127.0.0.2", 0))
    ack = await newcomer.gift(key="during-the-flood")
    seen = await watcher.next_event("gift")
    assert await asyncio.gather(*flood) == [429] * 50
    assert ack["t"] == "ack" and seen["from"] == "carol"
    assert server_open_from(server, "127.0.0.1") == 3
    for ws in held:
        await ws.close()
    await newcomer.close()
    await watcher.close()


async def test_a_refused_handshake_holds_no_slot(start_server, stores):
    server = await start_server(max_connections_per_address=1)
    for _ in range(5):
        with pytest.raises(InvalidStatus):
            await connect(f"{server.ws_url}?token=gc1.forged.token")
    ws = await connect(f"{server.ws_url}?token={server.token('mallory')}")
    await ws.close()


def server_open_from(server: Any, host: str) -> int:
    return server.services.connections.open_from(host)


async def test_server_memory_stays_flat_over_a_long_adversarial_run(valkey_url, stores, tmp_path):
    """RSS of a real server process after a warm-up vs after 4x more adversarial traffic and
    connection churn. A leak of a few hundred bytes per message or a few KB per connection
    would show; the bound leaves room for allocator noise."""
    with server_process(tmp_path, REDIS_URL=valkey_url, GIFTCAST_FRAME_RATE_PER_S="0",
                        GIFTCAST_USER_FRAME_RATE_PER_S="0") as proc:
        token = mint_token(TOKEN_SECRET, "mallory", "viewer", now=int(time.time()), ttl_s=600)

        async def churn(seed: int) -> None:
            for round_ in range(5):  # five connections in turn, each with its share of the traffic
                async with connect(f"{proc.ws_url}?token={token}") as ws:
                    messages = list(adversarial_messages(seed * 10 + round_, 200, ROOMS, KEYS))
                    for start in range(0, len(messages), WINDOW):
                        window = messages[start:start + WINDOW]
                        for message in window:
                            await ws.send(message)
                        await replies(ws, len(window))

        async def phase(seed: int) -> None:
            await asyncio.gather(*(churn(seed * 4 + worker) for worker in range(4)))

        await phase(1)  # warm-up: caches, pools, allocator arenas
        before = proc.rss_bytes()
        for seed in range(2, 6):
            await phase(seed)
        grown = proc.rss_bytes() - before
        assert grown < 8 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB"
        assert proc.proc.poll() is None
    assert "Traceback" not in proc.stderr(), proc.stderr()
    assert (await audit(stores.redis)).ok


async def test_adversarial_http_bodies_get_4xx_errors_and_change_nothing(start_server, stores):
    """Every POST route, fed the same adversarial payloads as JSON bodies or raw bytes. (The
    sandbox checkout is off, as in production: with it on, a valid body pays by design.)"""
    live_server = await start_server(sandbox_payments=False)
    order = await stores.orders.create("mallory", stores.catalog.bundle("coins_70"),
                                       recharge_credit(stores.catalog, stores.catalog.bundle("coins_70"), None, now_ms=0),
                                       "card")
    params = {"order_id": order["id"], "user_id": "mallory", "creator_id": "alice",
              "withdrawal_id": "alice.0123456789abcdef"}
    posts = [route.path.format(**params) for route in ROUTES if "POST" in (route.methods or ())]
    bodies = [m if isinstance(m, bytes) else m.encode()
              for m in adversarial_messages(seed=3, count=40, rooms=ROOMS, keys=KEYS)]
    async with live_server.http(live_server.token("mallory")) as http:
        for path in posts:
            for body in bodies + [b"{" * 50_000, b"[]" * 40_000, b'{"bundle_id": "coins_70"' + b" " * 70_000 + b"}"]:
                response = await http.post(path, content=body)
                assert response.status_code < 500, (path, body[:80], response.text)
                if response.status_code >= 400:
                    assert response.json()["error"]["code"] in set(_BY_CODE) | {"method_not_allowed"}
    assert (await stores.wallets.balances("mallory")).coins == 500
    assert (await audit(stores.redis)).ok
