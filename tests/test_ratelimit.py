"""Rate limits: the per-connection frame bucket (pure, then over a real socket) and the per-user
gift rate kept in Redis by the gift script."""

import asyncio
import json

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from server.errors import InsufficientFunds, RateLimited
from server.ratelimit import FLOOD_PAUSE_S, Admit, FrameLimiter, TokenBucket, UserBuckets
from server.settings import Settings
from tests.conftest import wait_until
from tests.factories import make_split_gifts, make_stores
from tests.ws_client import JSON

# --- pure: the bucket and the flood rule --------------------------------------------------------


def test_a_bucket_gives_its_burst_then_says_when_the_next_token_comes():
    bucket = TokenBucket(rate_per_s=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0


def test_a_bucket_refills_no_higher_than_its_burst():
    bucket = TokenBucket(rate_per_s=10, burst=2, now=0.0)
    assert [bucket.take(100.0) for _ in range(3)][-1] > 0


def test_refusals_without_a_pause_become_a_flood():
    limiter = FrameLimiter(rate_per_s=1, burst=1, flood_limit=3, now=0.0)
    assert [limiter.admit(0.0) for _ in range(4)] == [Admit.ACCEPT, Admit.REFUSE, Admit.REFUSE, Admit.FLOOD]


def test_a_pause_in_refusals_starts_the_flood_count_again():
    limiter = FrameLimiter(rate_per_s=0.01, burst=1, flood_limit=3, now=0.0)
    assert [limiter.admit(0.0) for _ in range(3)] == [Admit.ACCEPT, Admit.REFUSE, Admit.REFUSE]
    assert limiter.admit(FLOOD_PAUSE_S) is Admit.REFUSE
    assert limiter.admit(FLOOD_PAUSE_S) is Admit.REFUSE
    assert limiter.admit(FLOOD_PAUSE_S) is Admit.FLOOD


def test_a_refusal_tells_when_to_retry():
    limiter = FrameLimiter(rate_per_s=4, burst=1, flood_limit=10, now=0.0)
    limiter.admit(0.0)
    assert limiter.admit(0.0) is Admit.REFUSE and limiter.retry_after_s == pytest.approx(0.25)


def test_rate_zero_admits_everything():
    limiter = FrameLimiter(rate_per_s=0, burst=1, flood_limit=1, now=0.0)
    assert {limiter.admit(0.0) for _ in range(1000)} == {Admit.ACCEPT}


def test_a_users_connections_share_one_bucket():
    users = UserBuckets(rate_per_s=0.01, burst=3)
    first, second = (FrameLimiter(rate_per_s=100, burst=100, flood_limit=10, now=0.0) for _ in range(2))
    first.share(users.acquire("bob", 0.0))
    second.share(users.acquire("bob", 0.0))
    assert [first.admit(0.0), first.admit(0.0), second.admit(0.0), second.admit(0.0)] == [Admit.ACCEPT] * 3 + [Admit.REFUSE]
    other = FrameLimiter(rate_per_s=100, burst=100, flood_limit=10, now=0.0)
    other.share(users.acquire("carol", 0.0))
    assert other.admit(0.0) is Admit.ACCEPT


def test_a_users_bucket_lives_until_its_last_connection_closes():
    users = UserBuckets(rate_per_s=1, burst=1)
    bucket = users.acquire("bob", 0.0)
    assert users.acquire("bob", 0.0) is bucket
    users.release("bob")
    assert len(users) == 1 and users.acquire("bob", 0.0) is bucket
    for _ in range(2):
        users.release("bob")
    assert len(users) == 0 and users.acquire("bob", 0.0) is not bucket


def test_user_rate_zero_gives_no_bucket():
    assert UserBuckets(rate_per_s=0, burst=1).acquire("bob", 0.0) is None


# --- frames over a real WebSocket (our transport, echo handler) ---------------------------------


def ping(request_id):
    return json.dumps({"t": "ping", "id": request_id})


async def replies(ws, n):
    async with asyncio.timeout(5):
        return [json.loads(await ws.recv()) for _ in range(n)]


async def test_messages_beyond_the_burst_get_rate_limited_with_their_id(start_ws_server):
    server = await start_ws_server(Settings(frame_rate_per_s=0.1, frame_burst=3, frame_flood_limit=50))
    async with connect(server.url(), subprotocols=[JSON]) as ws:
        for i in range(5):
            await ws.send(ping(i))
        frames = await replies(ws, 5)
    echoed = [json.loads(f["data"])["id"] for f in frames if f["t"] == "echo"]  # processed by the handler
    refused = [f for f in frames if f["t"] == "error"]  # answered at once, so maybe before the echoes
    assert sorted(echoed) == [0, 1, 2]
    assert [(f["code"], f["id"]) for f in refused] == [("rate_limited", 3), ("rate_limited", 4)]
    assert all(0 < f["retry_after_ms"] <= 10_000 for f in refused)


async def test_sustained_flooding_closes_the_connection_with_1008(start_ws_server):
    server = await start_ws_server(Settings(frame_rate_per_s=0.1, frame_burst=2, frame_flood_limit=5))
    async with connect(server.url(), subprotocols=[JSON]) as ws:
        for i in range(20):
            await ws.send(ping(i))
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    assert ws.close_code == 1008


async def test_a_flooding_connection_does_not_limit_the_others(start_ws_server):
    server = await start_ws_server(Settings(frame_rate_per_s=0.1, frame_burst=2, frame_flood_limit=3))
    async with connect(server.url(), subprotocols=[JSON]) as calm, connect(server.url(), subprotocols=[JSON]) as flooder:
        for i in range(10):
            await flooder.send(ping(i))
        await flooder.wait_closed()
        await calm.send(ping(1))
        await calm.send(ping(2))
        assert [f["t"] for f in await replies(calm, 2)] == ["echo", "echo"]
    assert flooder.close_code == 1008


async def test_a_users_connections_share_the_per_user_rate_and_other_users_are_not_limited(
        start_server, open_room, open_client):
    server = await start_server(user_frame_rate_per_s=0.01, user_frame_burst=6)  # per connection: the defaults
    bobs = [await open_client(server, "bob") for _ in range(2)]  # each join takes one of bob's 6
    replies = await asyncio.gather(*(bob.request(t="ping") for bob in bobs for _ in range(3)))
    assert sorted(r.get("code", r["t"]) for r in replies) == ["pong"] * 4 + ["rate_limited"] * 2
    carol = await open_client(server, "carol")
    assert [(await carol.request(t="ping"))["t"] for _ in range(5)] == ["pong"] * 5  # her own 6, less the join


async def test_a_users_bucket_is_dropped_when_its_last_connection_closes(start_server, open_room, open_client):
    server = await start_server()
    bobs = [await open_client(server, "bob") for _ in range(2)]
    await open_client(server, "carol")
    assert len(server.services.user_frames) == 2
    for bob in bobs:
        await bob.close()
    await wait_until(lambda: len(server.services.user_frames) == 1)


# --- gifts per user, in Redis --------------------------------------------------------------------

ALICE = "alice"
SLOW = {"gift_rate_per_s": 0.05, "gift_burst": 3}  # 3 at once, then one per 20 s


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis, **SLOW)
    await stores.lives.set_state(ALICE, "open")
    for user in ("bob", "carol"):
        await stores.set_coins(user, 100)
    return stores


def charge(stores, sender="bob", key="k", gift="rose"):
    return price_gift(stores.catalog, Principal(sender, "viewer"), SendGift(1, ALICE, gift, 1, key), rate_bp=10_000)


async def test_gifts_beyond_the_burst_are_rate_limited_and_change_nothing(stores, redis):
    for i in range(3):
        await stores.wallets.apply_gift(charge(stores, key=f"k{i}"))
    history = await redis.xlen(keys.live_history(ALICE))
    with pytest.raises(RateLimited) as refused:
        await stores.wallets.apply_gift(charge(stores, key="k3"))
    assert 0 < refused.value.retry_after_ms <= 20_000
    assert (await stores.wallets.balances("bob")).coins == 97
    assert await redis.xlen(keys.live_history(ALICE)) == history
    assert not await redis.exists(keys.idempotency("bob", "k3"))


async def test_the_gift_rate_is_per_user(stores):
    for i in range(3):
        await stores.wallets.apply_gift(charge(stores, "bob", key=f"k{i}"))
    receipt = await stores.wallets.apply_gift(charge(stores, "carol", key="k0"))
    assert receipt.balance == 99


async def test_a_retry_of_a_gift_that_went_through_is_not_rate_limited(stores):
    for i in range(3):
        await stores.wallets.apply_gift(charge(stores, key=f"k{i}"))
    assert (await stores.wallets.apply_gift(charge(stores, key="k0"))).replay


async def test_a_refused_gift_does_not_use_up_the_rate(stores):
    for i in range(5):
        with pytest.raises(InsufficientFunds):
            await stores.wallets.apply_gift(charge(stores, key=f"big{i}", gift="universe"))
    for i in range(3):
        await stores.wallets.apply_gift(charge(stores, key=f"k{i}"))


async def test_the_gift_rate_is_shared_by_every_connection(stores, valkey_url):
    """Processes share the limit through Redis: 12 gifts on 4 connections, 3 go through."""
    clients = [aioredis.Redis.from_url(valkey_url) for _ in range(4)]
    try:
        per_client = [make_stores(client, **SLOW) for client in clients]

        async def send(i):
            try:
                await per_client[i % 4].wallets.apply_gift(charge(stores, key=f"race{i}"))
                return "ok"
            except RateLimited:
                return "limited"

        results = await asyncio.gather(*(send(i) for i in range(12)))
    finally:
        for client in clients:
            await client.aclose()
    assert results.count("ok") == 3 and (await stores.wallets.balances("bob")).coins == 97


async def test_the_cluster_debit_step_applies_the_same_gift_rate(stores, redis):
    gifts = make_split_gifts(stores)
    for i in range(3):
        await gifts.apply_gift(charge(stores, key=f"k{i}"))
    with pytest.raises(RateLimited) as refused:
        await gifts.apply_gift(charge(stores, key="k3"))
    assert 0 < refused.value.retry_after_ms <= 20_000
    assert (await stores.wallets.balances("bob")).coins == 97
    assert not await redis.hlen(keys.outbox("bob"))


async def test_a_rate_limited_gift_is_an_error_frame_with_a_retry_hint(start_server, open_room, open_client):
    server = await start_server(gift_rate_per_s=0.05, gift_burst=1)
    client = await open_client(server, "bob")
    assert (await client.gift())["t"] == "ack"
    refused = await client.gift()
    assert (refused["t"], refused["code"]) == ("error", "rate_limited")
    assert 0 < refused["retry_after_ms"] <= 20_000
