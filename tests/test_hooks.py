"""Integrators' webhooks (server/hooks.py, hooks_api.py) against a real server and a real HTTP
receiver on loopback: registration, signed in-order delivery, retries, restarts, dead endpoints."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn

from server import signing
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from tests.conftest import wait_until
from tests.factories import make_stores
from tests.test_ws_gifting import client  # noqa: F401  (the WebSocket test client fixture)


@dataclasses.dataclass
class Receiver:
    """An HTTP endpoint that records each POST and answers with the next scripted status
    (200 once the script is used up; "hang" never answers)."""

    url: str
    script: list[int | str]
    requests: list[tuple[dict[str, str], bytes]] = dataclasses.field(default_factory=list)
    answers: list[int | str] = dataclasses.field(default_factory=list)

    def accepted_events(self) -> list[dict[str, Any]]:
        """Events of the deliveries answered 2xx, in order."""
        return [event for status, (_, body) in zip(self.answers, self.requests, strict=False) if status == 200
                for event in json.loads(body)["events"]]


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(*script: int | str) -> Receiver:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        received = Receiver(f"http://127.0.0.1:{sock.getsockname()[1]}/hook", list(script))

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            body, more = b"", True
            while more:
                message = await receive()
                body, more = body + message.get("body", b""), message.get("more_body", False)
            status = received.script.pop(0) if received.script else 200
            received.requests.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
            received.answers.append(status)
            if status == "hang":
                await asyncio.Event().wait()
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", timeout_graceful_shutdown=1))
        servers.append((server, asyncio.create_task(server.serve(sockets=[sock]))))
        return received

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


@pytest.fixture
async def live_server(start_server):
    """This module's server polls webhooks every 20 ms and retries after 50 ms."""
    return await start_server(hook_poll_ms=20, hook_retry_base_ms=50)


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis)
    await stores.lives.set_state("alice", "open")
    await stores.set_coins("bob", 1000)
    return stores


async def gift(stores, count: int = 1) -> int:
    receipt = await stores.wallets.apply_gift(price_gift(
        stores.catalog, Principal("bob", "viewer"), SendGift(None, "alice", "rose", count, f"k{time.time_ns()}"),
        rate_bp=10_000))
    return receipt.seq


async def register(server, url: str, **extra: Any) -> dict[str, Any]:
    async with server.http(server.token("alice", "creator")) as http:
        response = await http.post("/v1/integrations/webhooks", json={"url": url, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def test_creator_registers_lists_and_deletes_a_webhook(live_server):
    hook = await register(live_server, "http://127.0.0.1:9/hook", events=["gift"])
    assert hook["id"].startswith("wh_") and len(hook["secret"]) > 30 and hook["events"] == ["gift"]
    async with live_server.http(live_server.token("alice", "creator")) as http:
        listed = (await http.get("/v1/integrations/webhooks")).json()["webhooks"]
        deleted = await http.delete(f"/v1/integrations/webhooks/{hook['id']}")
        again = await http.delete(f"/v1/integrations/webhooks/{hook['id']}")
    assert [(h["id"], h["delivered_seq"], "secret" in h) for h in listed] == [(hook["id"], 0, False)]
    assert deleted.json() == {"deleted": hook["id"]}
    assert (again.status_code, again.json()["error"]["code"]) == (404, "unknown_webhook")


@pytest.mark.parametrize("body,code", [
    ({"url": "ftp://example.invalid/"}, "invalid_field"),
    ({"url": "http://127.0.0.1:9/", "events": ["everything"]}, "invalid_field"),
    ({"url": "http://127.0.0.1:9/", "events": []}, "invalid_field"),
    ({}, "invalid_field"),
])
async def test_bad_webhook_registrations_are_refused(live_server, body, code):
    async with live_server.http(live_server.token("alice", "creator")) as http:
        response = await http.post("/v1/integrations/webhooks", json=body)
        listed = (await http.get("/v1/integrations/webhooks")).json()["webhooks"]
    assert (response.status_code, response.json()["error"]["code"], listed) == (400, code, [])


async def test_a_creator_has_at_most_five_webhooks(live_server):
    for _ in range(5):
        await register(live_server, "http://127.0.0.1:9/hook")
    async with live_server.http(live_server.token("alice", "creator")) as http:
        response = await http.post("/v1/integrations/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "too_many_webhooks")


async def test_viewers_cannot_register_webhooks(live_server):
    async with live_server.http(live_server.token("bob")) as http:
        response = await http.post("/v1/integrations/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert response.status_code == 403


async def test_events_after_registration_are_posted_signed_and_in_order(live_server, stores, receiver):
    endpoint = await receiver()
    await gift(stores)  # before registration: not delivered
    hook = await register(live_server, endpoint.url)
    seqs = [await gift(stores) for _ in range(3)]
    await wait_until(lambda: [e.get("seq") for e in endpoint.accepted_events()] == seqs)
    headers, body = endpoint.requests[0]
    signing.verify(hook["secret"], headers["giftcast-signature"], body, now=int(time.time()), tolerance_s=60)
    assert json.loads(body)["hook_id"] == hook["id"] and headers["giftcast-delivery"].startswith(hook["id"] + ":")
    assert {e["from"] for e in endpoint.accepted_events()} == {"bob"}


async def test_a_failing_endpoint_gets_the_same_events_again_until_it_accepts(live_server, stores, receiver):
    endpoint = await receiver(500, 503)
    await register(live_server, endpoint.url)
    seq = await gift(stores)
    await wait_until(lambda: endpoint.accepted_events() != [])
    bodies = [json.loads(body)["events"] for _, body in endpoint.requests]
    assert endpoint.answers[:3] == [500, 503, 200]
    assert [[e["seq"] for e in events] for events in bodies[:3]] == [[seq]] * 3
    async with live_server.http(live_server.token("alice", "creator")) as http:
        [listed] = (await http.get("/v1/integrations/webhooks")).json()["webhooks"]
    assert (listed["delivered_seq"], listed["attempts"]) == (seq, 0)


async def test_undelivered_events_survive_a_server_restart(start_server, stores, receiver):
    endpoint = await receiver(*[503] * 1000)
    first = await start_server(hook_poll_ms=20, hook_retry_base_ms=20)
    await register(first, endpoint.url)
    seq = await gift(stores)
    await wait_until(lambda: len(endpoint.requests) >= 2)  # tried, refused
    await first.stop()
    endpoint.script.clear()  # the endpoint recovers; only a new process can deliver now
    await start_server(hook_poll_ms=20, hook_retry_base_ms=20)
    await wait_until(lambda: [e["seq"] for e in endpoint.accepted_events()] == [seq], timeout=10)


async def test_a_hung_endpoint_does_not_hold_up_gifts(live_server, stores, receiver, client):  # noqa: F811
    endpoint = await receiver("hang")
    await register(live_server, endpoint.url)
    sender = await client("bob")
    await sender.gift()
    await wait_until(lambda: endpoint.answers == ["hang"])  # a delivery is stuck in flight
    acks = [await sender.gift() for _ in range(5)]
    assert [a["t"] for a in acks] == ["ack"] * 5


async def test_a_process_stopping_mid_delivery_hands_the_webhook_over_at_once(start_server, stores, receiver):
    endpoint = await receiver("hang")
    first = await start_server(hook_poll_ms=20, hook_timeout_s=60)  # its lease would last 65 s
    await register(first, endpoint.url)
    seq = await gift(stores)
    await wait_until(lambda: endpoint.answers == ["hang"])
    await first.stop()
    await start_server(hook_poll_ms=20)
    await wait_until(lambda: [e["seq"] for e in endpoint.accepted_events()] == [seq])
