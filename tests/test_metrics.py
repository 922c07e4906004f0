"""GET /metrics: protected, Prometheus text format, and its counters move when things happen."""

from __future__ import annotations

import asyncio
import contextlib

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import wait_until
from tests.factories import make_stores
from tests.ws_client import open_client

METRICS_TOKEN = "scrape-me-0123456789"


@pytest.fixture
async def server(start_server, redis):
    stores = make_stores(redis)
    await stores.lives.set_state("alice", "open")
    await stores.set_coins("bob", 100)
    return await start_server(metrics_token=METRICS_TOKEN)


async def scrape(server) -> dict[tuple[str, frozenset], float]:
    async with server.http(METRICS_TOKEN) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def moved(server, action, name: str, **labels: str) -> float:
    """How much one sample changed while `action` ran."""
    before = value(await scrape(server), name, **labels)
    await action()
    return value(await scrape(server), name, **labels) - before


@pytest.mark.parametrize("token,status", [(None, 401), ("wrong-token", 401), ("VIEWER", 403), ("ADMIN", 200)])
async def test_metrics_need_the_metrics_token_or_an_admin_token(server, token, status):
    token = {"VIEWER": server.token("bob"), "ADMIN": server.token("root", "admin")}.get(token, token)
    async with server.http(token) as http:
        assert (await http.get("/metrics")).status_code == status


async def test_gift_outcomes_are_counted(server):
    bob = await open_client(server.ws_url, server.token("bob"), join=("alice",))
    assert await moved(server, lambda: bob.gift(key="m1"), "giftcast_gifts_total", outcome="accepted") == 1
    assert await moved(server, lambda: bob.gift(key="m1"), "giftcast_gifts_total", outcome="replay") == 1
    assert await moved(server, lambda: bob.gift(gift_id="universe"), "giftcast_gifts_total",
                       outcome="insufficient_funds") == 1
    assert await moved(server, lambda: bob.gift(gift_id="universe"), "giftcast_errors_total",
                       code="insufficient_funds", via="ws") == 1
    await bob.close()


async def test_malformed_frames_count_as_rejected_inputs(server):
    bob = await open_client(server.ws_url, server.token("bob"))

    async def garbage():
        await bob.ws.send(b"\xc1")
        await bob.next_event("error")
        await bob.request(t="gift", room="alice", gift_id="rose", count=1.5, key="k")

    samples = await scrape(server)
    await garbage()
    after = await scrape(server)
    for code in ("malformed_frame", "invalid_count"):
        name = "giftcast_rejected_inputs_total"
        assert value(after, name, code=code) - value(samples, name, code=code) == 1
    await bob.close()


async def test_connections_are_counted_open_and_closed_by_code(start_server, server):
    small = await start_server(max_frame_bytes=2048, metrics_token=METRICS_TOKEN)
    ws = await connect(f"{small.ws_url}?token={small.token('bob')}")
    samples = await scrape(small)
    assert value(samples, "giftcast_ws_connections") == 1
    assert value(samples, "giftcast_ws_connections_opened_total") == 1
    await ws.send(msgpack.packb({"t": "ping", "pad": "x" * 4096}))
    with pytest.raises(ConnectionClosed):
        await ws.recv()

    async def closed() -> bool:
        return value(await scrape(small), "giftcast_ws_connections_closed_total", code="1009") == 1
    async with asyncio.timeout(5):
        while not await closed():
            await asyncio.sleep(0.01)
    samples = await scrape(small)
    assert value(samples, "giftcast_ws_connections") == 0
    assert value(samples, "giftcast_rejected_inputs_total", code="message_too_big") == 1


async def test_a_connection_closed_for_flooding_counts_as_a_rejected_input(start_server, server):
    strict = await start_server(frame_rate_per_s=0.1, frame_burst=1, frame_flood_limit=2, metrics_token=METRICS_TOKEN)
    ws = await connect(f"{strict.ws_url}?token={strict.token('bob')}")
    with contextlib.suppress(ConnectionClosed):
        for _ in range(3):
            await ws.send(msgpack.packb({"t": "ping"}))
    await ws.wait_closed()

    async def counted() -> bool:
        return value(await scrape(strict), "giftcast_rejected_inputs_total", code="frame_flood") == 1
    await wait_until(counted)
    assert value(await scrape(strict), "giftcast_ws_connections_closed_total", code="1008") == 1


async def test_refused_handshakes_are_counted_by_code(server):
    async def refused():
        with pytest.raises(InvalidStatus):
            await connect(f"{server.ws_url}?token=gc1.x.y")
    assert await moved(server, refused, "giftcast_errors_total", code="token_invalid", via="handshake") == 1


async def test_redis_script_latency_is_observed_per_script(server):
    bob = await open_client(server.ws_url, server.token("bob"), join=("alice",))
    assert await moved(server, bob.gift, "giftcast_redis_script_seconds_count", script="send_gift") == 1
    await bob.close()


async def test_fanout_counts_one_event_and_a_delivery_per_member(server):
    bob = await open_client(server.ws_url, server.token("bob"), join=("alice",))
    carol = await open_client(server.ws_url, server.token("carol"), join=("alice",))
    before = await scrape(server)

    async def gift_seen_by_both():
        await bob.gift()
        await carol.next_event()
    await gift_seen_by_both()
    after = await scrape(server)
    assert value(after, "giftcast_fanout_events_total") - value(before, "giftcast_fanout_events_total") == 1
    assert value(after, "giftcast_fanout_deliveries_total") - value(before, "giftcast_fanout_deliveries_total") == 2
    await bob.close()
    await carol.close()


async def test_http_requests_are_counted_by_route_template_and_status(server):
    async def lookups():
        async with server.http(server.token("bob")) as http:
            for order_id in ("bob.0000000000000001", "bob.0000000000000002"):
                assert (await http.get(f"/v1/orders/{order_id}")).status_code == 404
    assert await moved(server, lookups, "giftcast_http_requests_total", route="/v1/orders/{order_id}", status="404") == 2
    assert await moved(server, lookups, "giftcast_errors_total", code="unknown_order", via="http") == 2
