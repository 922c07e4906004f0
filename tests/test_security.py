"""Every door locked, end to end: the authorization matrix over EVERY HTTP route (enumerated from
`server.app.ROUTES`, so a new route without a row fails) and every WebSocket frame type;
tampered, expired, wrong-audience and foreign-key tokens; cross-site handshakes; replayed,
re-signed and stale webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server import signing
from server.auth import mint_token
from server.app import ALL_ROUTES
from server.payments import PAYOUT_WEBHOOK_PATH, WEBHOOK_PATH
from server.ws_handshake import EVENTS_PATH, WS_PATH
from tests.conftest import TOKEN_SECRET, WEBHOOK_SECRET
from tests.factories import make_stores
from tests.webhooks import payment_event
from tests.ws_client import open_client

NOBODY, VIEWER, OTHER, CREATOR, ADMIN, OVERLAY = "nobody", "viewer", "other_viewer", "creator", "admin", "overlay"
PRINCIPALS = {VIEWER: ("bob", "viewer"), OTHER: ("carol", "viewer"), CREATOR: ("alice", "creator"),
              ADMIN: ("root", "admin"), OVERLAY: ("alice", "overlay")}
ORDER_OWNER = "bob"  # path {order_id} is one of bob's orders; {user_id} is bob; {creator_id} is alice;
# {withdrawal_id} is one of alice's, pending


def row(nobody: int, viewer: int, other: int, creator: int, admin: int, overlay: int) -> dict[str, int]:
    return {NOBODY: nobody, VIEWER: viewer, OTHER: other, CREATOR: creator, ADMIN: admin, OVERLAY: overlay}


def everyone(status: int) -> dict[str, int]:
    return row(status, status, status, status, status, status)


# (method, path) -> expected HTTP status per principal. Dev tokens and the sandbox are enabled
# here (the test server's defaults); test_dev_routes_are_closed_in_production covers them off.
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/healthz"): everyone(200),
    ("GET", "/metrics"): row(401, 403, 403, 403, 200, 403),  # or GIFTCAST_METRICS_TOKEN (test_metrics.py)
    ("POST", "/dev/tokens"): everyone(201),
    ("GET", "/v1/catalog/bundles"): everyone(200),
    ("GET", "/v1/catalog/gifts"): everyone(200),
    ("GET", "/v1/catalog/goods"): everyone(200),
    ("GET", "/v1/catalog/rates"): everyone(200),
    ("GET", "/v1/me/profile"): row(401, 200, 200, 200, 200, 403),
    ("GET", "/v1/me/limits"): row(401, 200, 200, 200, 403, 403),
    ("PUT", "/v1/me/limits"): row(401, 200, 200, 200, 403, 403),
    ("POST", "/v1/goods/purchases"): row(401, 201, 409, 409, 403, 403),  # carol and alice have no coins
    ("GET", "/v1/me/inventory"): row(401, 200, 200, 200, 200, 403),
    ("GET", "/v1/me/statement"): row(401, 200, 200, 200, 200, 403),
    ("POST", "/v1/withdrawals"): row(401, 403, 403, 201, 403, 403),
    ("GET", "/v1/me/withdrawals"): row(401, 403, 403, 200, 403, 403),
    ("GET", "/v1/withdrawals/{withdrawal_id}"): row(401, 404, 404, 200, 200, 404),
    ("GET", "/v1/admin/withdrawals"): row(401, 403, 403, 403, 200, 403),
    ("GET", "/v1/admin/locked-accounts"): row(401, 403, 403, 403, 200, 403),
    ("GET", "/v1/admin/rates"): row(401, 403, 403, 403, 200, 403),
    ("POST", "/v1/admin/rates"): row(401, 403, 403, 403, 201, 403),
    ("GET", "/v1/admin/users/{user_id}/withdrawals"): row(401, 403, 403, 403, 200, 403),
    ("POST", "/v1/admin/withdrawals/{withdrawal_id}/reject"): row(401, 403, 403, 403, 200, 403),
    ("POST", "/v1/admin/withdrawals/{withdrawal_id}/approve"): row(401, 403, 403, 403, 409, 403),  # rejected
    ("GET", "/v1/admin/users/{user_id}/statement"): row(401, 403, 403, 403, 200, 403),
    ("GET", "/v1/admin/users/{user_id}/profile"): row(401, 403, 403, 403, 200, 403),
    ("PUT", "/v1/admin/users/{user_id}/profile"): row(401, 403, 403, 403, 200, 403),
    ("POST", "/v1/admin/users/{user_id}/rewards"): row(401, 403, 403, 403, 201, 403),
    ("POST", "/v1/admin/users/{user_id}/adjustments"): row(401, 403, 403, 403, 201, 403),
    ("POST", "/v1/admin/orders/{order_id}/refund"): row(401, 403, 403, 403, 409, 403),  # not paid
    ("POST", "/sandbox/chargeback/{order_id}"): row(401, 409, 404, 404, 409, 404),  # not paid
    ("POST", "/v1/webhooks/payouts"): everyone(401),  # a bearer token is no webhook signature
    ("GET", "/v1/me/wallet"): row(401, 200, 200, 200, 200, 403),
    ("GET", "/v1/me/ledger"): row(401, 200, 200, 200, 200, 403),
    ("GET", "/v1/me/orders"): row(401, 200, 200, 200, 200, 403),
    ("POST", "/v1/orders"): row(401, 201, 201, 201, 403, 403),
    ("GET", "/v1/orders/{order_id}"): row(401, 200, 404, 404, 200, 404),
    ("POST", "/v1/live/open"): row(401, 403, 403, 200, 403, 403),
    ("POST", "/v1/live/goal"): row(401, 403, 403, 200, 403, 403),  # walked while the room is open
    ("POST", "/v1/live/close"): row(401, 403, 403, 200, 403, 403),
    ("POST", "/v1/live/overlay-token"): row(401, 403, 403, 201, 403, 403),
    ("POST", "/v1/integrations/webhooks"): row(401, 403, 403, 201, 403, 403),
    ("GET", "/v1/integrations/webhooks"): row(401, 403, 403, 200, 403, 403),
    ("DELETE", "/v1/integrations/webhooks/{hook_id}"): row(401, 403, 403, 404, 403, 403),  # no such webhook
    ("GET", "/v1/rooms/{creator_id}"): everyone(200),
    ("GET", "/v1/rooms/{creator_id}/leaderboard"): everyone(200),
    ("GET", "/v1/admin/users/{user_id}/wallet"): row(401, 403, 403, 403, 200, 403),
    ("POST", WEBHOOK_PATH): everyone(401),  # a bearer token is no webhook signature
    ("POST", "/sandbox/checkout/{order_id}"): row(401, 202, 404, 404, 202, 404),
    ("GET", "/openapi.json"): everyone(200),
    ("GET", "/overlay/{creator_id}"): row(401, 403, 403, 403, 403, 200),  # only alice's overlay token
}
PAGES = {"/overlay/{creator_id}"}  # opened as a browser source: the token is in the query, errors are HTML
BODIES = {"/dev/tokens": {"user_id": "eve"}, "/v1/orders": {"bundle_id": "coins_70"}, "/v1/live/goal": {"diamonds": 100},
          "/sandbox/checkout/{order_id}": {"outcome": "decline"}, "/v1/me/limits": {"day": 1000},
          "/v1/goods/purchases": {"good_id": "neon_filter", "key": "m1"},
          "/v1/withdrawals": {"diamonds": 2000, "key": "m2"},
          "/v1/admin/withdrawals/{withdrawal_id}/reject": {"reason": "matrix"},
          "/v1/admin/users/{user_id}/profile": {"account_type": "business"},
          "/v1/admin/rates": {"region": "GB", "rate_bp": 9_000, "cash_per_1000_diamonds": 360},
          "/v1/admin/users/{user_id}/rewards": {"coins": 5, "reason": "matrix", "key": "r1"},
          "/v1/admin/users/{user_id}/adjustments": {"unit": "coins", "delta": 5, "reason": "matrix", "key": "a1"},
          "/v1/integrations/webhooks": {"url": "http://127.0.0.1:9/hook"}}


def route_table() -> set[tuple[str, str]]:
    # Mounts (/static, /demo) serve public files and have no methods to walk.
    return {(method, route.path) for route in ALL_ROUTES for method in (getattr(route, "methods", None) or ())
            if method != "HEAD"}


def forge(claims: dict[str, Any], secret: str = TOKEN_SECRET) -> str:
    """A token with arbitrary claims, signed like auth.mint_token signs."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signed = "gc1." + b64(json.dumps(claims).encode())
    return signed + "." + b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def bad_tokens(server: Any) -> dict[str, str]:
    """Name -> a token that must be refused, with the code it must get."""
    now = int(time.time())
    good = server.token("bob")
    head, claims, sig = good.split(".")
    admin_claims = base64.urlsafe_b64encode(json.dumps(
        {"sub": "bob", "role": "admin", "aud": "giftcast", "iat": now, "exp": now + 600}).encode()).rstrip(b"=").decode()
    return {
        "token_invalid:tampered_role": f"{head}.{admin_claims}.{sig}",
        "token_invalid:tampered_signature": f"{head}.{claims}.{sig[:-2]}AA",
        "token_invalid:no_signature": f"{head}.{claims}.",
        "token_invalid:other_secret": mint_token("not-the-secret", "bob", "admin", now=now, ttl_s=600),
        "token_invalid:wrong_audience": forge({"sub": "bob", "role": "viewer", "aud": "other-app", "iat": now, "exp": now + 600}),
        "token_invalid:unknown_role": forge({"sub": "bob", "role": "root", "aud": "giftcast", "iat": now, "exp": now + 600}),
        "token_invalid:garbage": "gc1.e30.e30",
        "token_expired:expired": server.token("bob", ttl_s=-1),
        "token_expired:float_expiry": forge({"sub": "bob", "role": "admin", "aud": "giftcast", "iat": now, "exp": 1e18}),
    }


@pytest.fixture
async def world(live_server, redis):
    return await make_world(live_server, redis)


async def make_world(live_server: Any, redis: Any) -> dict[str, str]:
    """Alice's open room, bob's coins and order, alice's pending withdrawal: the ids the paths name."""
    stores = make_stores(redis)
    await stores.lives.set_state("alice", "open")
    await stores.set_coins("bob", 100)
    await stores.set_diamonds("alice", 10_000)
    async with live_server.http(live_server.token(ORDER_OWNER)) as http:
        order = (await http.post("/v1/orders", json={"bundle_id": "coins_70"})).json()
    async with live_server.http(live_server.token("alice", "creator")) as http:
        withdrawal = (await http.post("/v1/withdrawals", json={"diamonds": 2000, "key": "world"})).json()
    return {"order_id": order["id"], "user_id": "bob", "creator_id": "alice", "withdrawal_id": withdrawal["id"],
            "hook_id": "wh_0123456789abcdef"}


async def request_as(http: Any, method: str, url: str, token: str | None, *, page: bool, json: Any) -> Any:
    """One request carrying `token` the way its client would: a bearer header, or ?token= for a page."""
    if page:
        return await http.request(method, url, params={"token": token} if token else {})
    return await http.request(method, url, json=json, headers={"authorization": f"Bearer {token}"} if token else {})


def test_every_route_is_in_the_matrix():
    assert route_table() == set(MATRIX), "add the new route to MATRIX with its expected status per principal"


async def test_the_authorization_matrix_holds_for_every_route_and_principal(live_server, world):
    wrong = []
    async with live_server.http() as http:
        for (method, path), expected in MATRIX.items():
            for principal, status in expected.items():
                token = None if principal == NOBODY else live_server.token(*PRINCIPALS[principal])
                response = await request_as(http, method, path.format(**world), token, page=path in PAGES,
                                            json=BODIES.get(path))
                if response.status_code != status:
                    wrong.append(f"{method} {path} as {principal}: {response.status_code} {response.text[:100]}")
    assert wrong == []


async def test_bad_tokens_are_refused_on_every_authenticated_route(live_server, world):
    webhooks = (WEBHOOK_PATH, PAYOUT_WEBHOOK_PATH)
    authenticated = [key for key, expected in MATRIX.items() if expected[NOBODY] == 401 and key[1] not in webhooks]
    wrong = []
    async with live_server.http() as http:
        for name, token in bad_tokens(live_server).items():
            code = name.split(":")[0]
            for method, path in authenticated:
                response = await request_as(http, method, path.format(**world), token, page=path in PAGES,
                                            json=BODIES.get(path))
                refused = response.status_code == 401 and (
                    code in response.text if path in PAGES else response.json()["error"]["code"] == code)
                if not refused:
                    wrong.append(f"{name} on {method} {path}: {response.status_code} {response.text[:100]}")
    assert wrong == []


@pytest.mark.parametrize("path", [WS_PATH, EVENTS_PATH])
async def test_bad_tokens_are_refused_at_the_websocket_handshake(live_server, path):
    for name, token in bad_tokens(live_server).items():
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{live_server.ws_url.removesuffix(WS_PATH)}{path}?token={token}")
        response = refused.value.response
        assert (response.status_code, json.loads(response.body)["error"]["code"]) == (401, name.split(":")[0]), name


# Frame -> reply per role ("t" of the reply, or the error code). Every frame type is here.
FRAMES = {
    "ping": {"t": "ping"},
    "join_alice": {"t": "join", "room": "alice"},
    "join_ann": {"t": "join", "room": "ann"},
    "gift_alice": {"t": "gift", "room": "alice", "gift_id": "rose", "count": 1, "key": "k-alice"},
    "gift_ann": {"t": "gift", "room": "ann", "gift_id": "rose", "count": 1, "key": "k-ann"},
    "leave_alice": {"t": "leave", "room": "alice"},
}
FRAME_MATRIX = {  # frames run in FRAMES order on one connection per role; ann's room is closed
    VIEWER: ["pong", "joined", "joined", "ack", "room_closed", "left"],
    CREATOR: ["pong", "joined", "joined", "self_gift", "room_closed", "left"],
    ADMIN: ["pong", "joined", "joined", "forbidden", "forbidden", "left"],
    OVERLAY: ["pong", "joined", "forbidden", "forbidden", "not_in_room", "left"],
}


def test_every_frame_type_is_in_the_frame_matrix():
    from server.codec import ClientFrame
    assert {frame["t"] for frame in FRAMES.values()} == {cls.__name__.lower().replace("sendgift", "gift")
                                                         for cls in ClientFrame.__args__}


@pytest.mark.parametrize("role", FRAME_MATRIX)
async def test_the_frame_matrix_holds_for_each_role(live_server, world, role):
    client = await open_client(live_server.ws_url, live_server.token(*PRINCIPALS[role]))
    got = []
    for frame in FRAMES.values():
        reply = await client.request(**frame)
        got.append(reply["code"] if reply["t"] == "error" else reply["t"])
    assert got == FRAME_MATRIX[role]
    await client.close()


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example"])
async def test_cross_site_handshake_is_refused(live_server, origin):
    with pytest.raises(InvalidStatus) as refused:
        await connect(live_server.ws_url, additional_headers={
            "Origin": origin, "Authorization": f"Bearer {live_server.token('bob')}"})
    assert refused.value.response.status_code == 403


async def test_a_listed_origin_is_allowed(start_server):
    server = await start_server(allowed_origins=("https://app.example",))
    ws = await connect(server.ws_url, additional_headers={
        "Origin": "https://app.example", "Authorization": f"Bearer {server.token('bob')}"})
    await ws.close()


async def test_dev_routes_are_closed_in_production(start_server, world):
    server = await start_server(dev_tokens=False, sandbox_payments=False)
    async with server.http(server.token("root", "admin")) as http:
        assert (await http.post("/dev/tokens", json={"user_id": "eve", "role": "admin"})).status_code == 404
        assert (await http.post(f"/sandbox/checkout/{world['order_id']}")).status_code == 404


async def test_a_captured_webhook_replayed_byte_for_byte_credits_nothing_more(live_server, world):
    async with live_server.http(live_server.token("bob")) as http:
        order = (await http.get(f"/v1/orders/{world['order_id']}")).json()
    body = payment_event(order, "pay_captured")
    headers = {signing.SIGNATURE_HEADER: signing.signature_header(WEBHOOK_SECRET, int(time.time()), body)}
    async with live_server.http() as http:
        first = await http.post(WEBHOOK_PATH, content=body, headers=headers)
        replayed = [await http.post(WEBHOOK_PATH, content=body, headers=headers) for _ in range(3)]
    assert first.json()["replay"] is False and all(r.json()["replay"] for r in replayed)
    async with live_server.http(live_server.token("bob")) as http:
        assert (await http.get("/v1/me/wallet")).json()["coins"] == 170


# Stamps outside the tolerance window by a minute: the server checks the window against its clock
# when the request arrives, later than the stamp was made, so a stamp 1 s beyond the future edge
# (it used to be +301 s) fell inside the window whenever a second ticked over in between. The
# exact edges are tested with a fixed clock in test_signing.py.
@pytest.mark.parametrize("outside_s,code", [(-60, "stale_timestamp"), (60, "stale_timestamp"), (None, "bad_signature")],
                         ids=["past", "future", "re-bodied"])
async def test_stale_future_or_re_bodied_webhooks_are_refused(live_server, world, outside_s, code):
    async with live_server.http(live_server.token("bob")) as http:
        order = (await http.get(f"/v1/orders/{world['order_id']}")).json()
    body = payment_event(order, "pay_x")
    tolerance_s = live_server.settings.webhook_tolerance_s
    skew_s = 0 if outside_s is None else outside_s + (tolerance_s if outside_s > 0 else -tolerance_s)
    header = signing.signature_header(WEBHOOK_SECRET, int(time.time()) + skew_s, body)
    if code == "bad_signature":  # a valid signature, moved onto a body the provider never sent
        body = body.replace(b'"pay_x"', b'"pay_y"')
    async with live_server.http() as http:
        response = await http.post(WEBHOOK_PATH, content=body, headers={signing.SIGNATURE_HEADER: header})
    assert (response.status_code, response.json()["error"]["code"]) == (401, code)
    async with live_server.http(live_server.token("bob")) as http:
        assert (await http.get(f"/v1/orders/{world['order_id']}")).json()["status"] == "pending"
