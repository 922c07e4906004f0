"""Admin routes and disputes on a real server: profiles, grants, refunds and chargebacks through
the sandbox provider's signed webhooks, and a refund racing its own redeliveries and spending."""

import asyncio
import json
import time

import pytest

from server import keys, signing
from server.audit import audit
from server.payments import WEBHOOK_PATH
from tests.conftest import WEBHOOK_SECRET, wait_until
from tests.factories import make_stores, now_ms
from tests.webhooks import deliver, payment_event


def admin(server):
    return server.http(server.token("root", "admin"))


async def test_admin_sets_a_profile_and_others_may_not(live_server):
    async with admin(live_server) as http:
        set_ = await http.put("/v1/admin/users/bob/profile", json={"region": "GB", "account_type": "business"})
        read = (await http.get("/v1/admin/users/bob/profile")).json()
        empty = await http.put("/v1/admin/users/bob/profile", json={})
    async with live_server.http(live_server.token("bob")) as http:
        refused = await http.put("/v1/admin/users/bob/profile", json={"region": "US"})
    assert set_.status_code == 200 and (read["region"], read["account_type"]) == ("GB", "business")
    assert empty.json()["error"]["code"] == "invalid_field" and refused.status_code == 403


async def test_reward_and_adjustment_are_ledgered_once(live_server):
    async with admin(live_server) as http:
        reward = await http.post("/v1/admin/users/bob/rewards", json={"coins": 40, "reason": "quiz", "key": "q1"})
        again = await http.post("/v1/admin/users/bob/rewards", json={"coins": 40, "reason": "quiz", "key": "q1"})
        fix = await http.post("/v1/admin/users/bob/adjustments",
                              json={"unit": "coins", "delta": -15, "reason": "double reward", "key": "f1"})
        statement = (await http.get("/v1/admin/users/bob/statement")).json()["entries"]
    assert (reward.status_code, again.status_code, again.json()["replay"], fix.json()["balance"]) == (201, 200, True, 25)
    assert [(e["kind"], e["delta"], e["admin"]) for e in statement] == [("reward", 40, "root"),
                                                                        ("adjustment", -15, "root")]


@pytest.mark.parametrize("path,body", [
    ("rewards", {"coins": -5, "reason": "x", "key": "k"}),
    ("adjustments", {"unit": "coins", "delta": -5, "reason": "x", "key": "k"}),  # below zero
    ("adjustments", {"unit": "hearts", "delta": 5, "reason": "x", "key": "k"}),
])
async def test_bad_grants_change_nothing(live_server, path, body):
    async with admin(live_server) as http:
        response = await http.post(f"/v1/admin/users/bob/{path}", json=body)
        wallet = (await http.get("/v1/admin/users/bob/wallet")).json()
    assert response.status_code in (400, 409) and wallet["coins"] == 0


async def test_viewers_cannot_grant(live_server):
    async with live_server.http(live_server.token("bob")) as http:
        response = await http.post("/v1/admin/users/bob/rewards", json={"coins": 5, "reason": "me", "key": "k"})
    assert response.status_code == 403


async def order_has(server, order_id, field, value):
    async with admin(server) as http:
        return (await http.get(f"/v1/orders/{order_id}")).json().get(field) == value


async def order_status(server, order_id, status):
    return await order_has(server, order_id, "status", status)


async def test_admin_refund_through_the_sandbox_removes_unspent_coins(live_server, redis):
    order = await make_stores(redis).paid_order("bob")
    async with admin(live_server) as http:
        response = await http.post(f"/v1/admin/orders/{order['id']}/refund", json={"deliveries": 3})
    assert response.status_code == 202
    await wait_until(lambda: order_status(live_server, order["id"], "refunded"))
    async with live_server.http(live_server.token("bob")) as http:
        wallet = (await http.get("/v1/me/wallet")).json()
        kinds = [e["kind"] for e in (await http.get("/v1/me/ledger")).json()["entries"]]
    assert (wallet["coins"], wallet["locked"], kinds.count("refund")) == (0, None, 1)


async def test_a_chargeback_after_spending_locks_the_account_visibly(live_server, redis):
    stores = make_stores(redis)
    order = await stores.paid_order("bob")
    async with live_server.http(live_server.token("bob")) as http:
        await http.post("/v1/goods/purchases", json={"good_id": "sparkle_entrance", "count": 3, "key": "p1"})
        disputed = await http.post(f"/sandbox/chargeback/{order['id']}", json={})
    assert disputed.status_code == 202
    await wait_until(lambda: order_status(live_server, order["id"], "charged_back"))
    async with admin(live_server) as http:
        wallet = (await http.get("/v1/admin/users/bob/wallet")).json()
    assert (wallet["coins"], wallet["locked"]) == (-597, f"chargeback:{order['id']}")
    assert (await audit(redis)).ok


async def test_admins_list_the_locked_accounts_and_the_user_sees_why(live_server, redis):
    order = await make_stores(redis).lock_by_chargeback("bob")
    async with admin(live_server) as http:
        listed = (await http.get("/v1/admin/locked-accounts")).json()["accounts"]
    async with live_server.http(live_server.token("bob")) as http:
        wallet = (await http.get("/v1/me/wallet")).json()
    assert [(r["user_id"], r["coins"], r["locked"]) for r in listed] == [("bob", -700, f"chargeback:{order['id']}")]
    assert (wallet["coins"], wallet["locked"]) == (-700, f"chargeback:{order['id']}")


async def test_an_admin_write_off_settles_a_locked_account(live_server, redis):
    await make_stores(redis).lock_by_chargeback("bob")
    async with admin(live_server) as http:
        written_off = await http.post("/v1/admin/users/bob/adjustments", json={
            "unit": "coins", "delta": 700, "reason": "write-off", "key": "wo1"})
        listed = (await http.get("/v1/admin/locked-accounts")).json()["accounts"]
        wallet = (await http.get("/v1/admin/users/bob/wallet")).json()
    assert (written_off.status_code, listed, wallet["coins"], wallet["locked"]) == (201, [], 0, None)
    assert (await audit(redis)).ok


async def test_a_partial_refund_through_the_sandbox_removes_that_share(live_server, redis):
    order = await make_stores(redis).paid_order("bob")  # 707 coins for 999 cents
    async with admin(live_server) as http:
        response = await http.post(f"/v1/admin/orders/{order['id']}/refund", json={"amount": 300})
        await wait_until(lambda: order_has(live_server, order["id"], "reversed_amount", 300))
        rest = await http.post(f"/v1/admin/orders/{order['id']}/refund", json={})
        await wait_until(lambda: order_status(live_server, order["id"], "refunded"))
        too_much = await http.post(f"/v1/admin/orders/{order['id']}/refund", json={"amount": 1})
        wallet = (await http.get("/v1/admin/users/bob/wallet")).json()
    assert (response.status_code, response.json()["amount"], rest.json()["amount"]) == (202, 300, 699)
    assert (too_much.status_code, wallet["coins"]) == (409, 0)  # wholly refunded: nothing is left
    assert (await audit(redis)).ok


@pytest.mark.parametrize("amount", [0, 1000, "300", 2.5])
async def test_a_refund_of_more_than_is_left_or_not_an_amount_is_refused(live_server, redis, amount):
    order = await make_stores(redis).paid_order("bob")
    async with admin(live_server) as http:
        response = await http.post(f"/v1/admin/orders/{order['id']}/refund", json={"amount": amount})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_field")


async def test_a_rate_an_admin_publishes_applies_to_later_gifts_and_withdrawals(start_server, open_client, redis):
    server = await start_server(rate_refresh_s=0.2)  # a version may take effect 1.2 s after publishing
    stores = make_stores(redis)
    await stores.set_coins("bob", 100)
    await stores.set_diamonds("alice", 10_000)
    await stores.lives.set_state("alice", "open")
    sender = await open_client(server, "bob")
    async with admin(server) as http, server.http(server.token("alice", "creator")) as creator:
        published = await http.post("/v1/admin/rates", json={"region": "US", "rate_bp": 5_000,
                                                              "cash_per_1000_diamonds": 250})
        rate = published.json()
        before = (await sender.gift(gift_id="panda"))["receipt"]
        assert now_ms() < rate["from_ms"], "the machine was too slow to gift before the new rate"
        await wait_until(lambda: now_ms() >= rate["from_ms"])
        after = (await sender.gift(gift_id="panda"))["receipt"]
        withdrawal = (await creator.post("/v1/withdrawals", json={"diamonds": 2_000, "key": "w1"})).json()
        in_force = (await http.get("/v1/catalog/rates", params={"region": "US"})).json()
        listed = (await http.get("/v1/admin/rates")).json()["rates"]
    assert (published.status_code, rate["version"], rate["currency"]) == (201, 2, "USD")
    assert (before["rate_bp"], after["rate_bp"], after["diamonds_credited"]) == (10_000, 5_000, 2)
    assert (withdrawal["rate_version"], withdrawal["cash"], in_force["version"]) == (2, 500, 2)
    assert [r["version"] for r in listed["US"]] == [1, 2] and [r["version"] for r in listed["GB"]] == [1]
    received = [e["rate_version"] for e in await stores.wallets.ledger("alice") if e["kind"] == "gift_received"]
    assert received == [2, 1]  # newest first


@pytest.mark.parametrize("body", [{}, {"region": "US", "rate_bp": 5_000},
                                  {"region": "US", "rate_bp": 5_000, "cash_per_1000_diamonds": 250, "from": 1}])
async def test_a_bad_rate_is_refused_and_publishes_nothing(live_server, redis, body):
    async with admin(live_server) as http:
        response = await http.post("/v1/admin/rates", json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_field")
    assert await redis.hgetall(keys.PUBLISHED_RATES) == {}


async def test_refunds_need_the_admin_and_a_paid_order(live_server, redis):
    stores = make_stores(redis)
    order = await stores.paid_order("bob")
    async with live_server.http(live_server.token("bob")) as http:
        assert (await http.post(f"/v1/admin/orders/{order['id']}/refund", json={})).status_code == 403
    async with live_server.http(live_server.token("carol")) as http:
        assert (await http.post(f"/sandbox/chargeback/{order['id']}", json={})).status_code == 404
    async with live_server.http(live_server.token("bob")) as http:
        pending = (await http.post("/v1/orders", json={"bundle_id": "coins_70"})).json()
        response = await http.post(f"/sandbox/chargeback/{pending['id']}", json={})
    assert (response.status_code, response.json()["error"]["code"]) == (409, "order_state")


async def test_disputes_are_off_without_the_sandbox(start_server, redis):
    server = await start_server(sandbox_payments=False)
    order = await make_stores(redis).paid_order("bob")
    async with server.http(server.token("bob")) as http:
        assert (await http.post(f"/sandbox/chargeback/{order['id']}", json={})).status_code == 404


def refund_event(order, reversal_id="re_1", kind="payment.refunded", amount=None):
    body = json.dumps({"id": "evt_r", "type": kind, "created": 0, "data": {
        "payment_id": order["payment_id"], "order_id": order["id"], "reversal_id": reversal_id,
        "amount": order["price"] if amount is None else amount, "currency": order["currency"]}}).encode()
    header = signing.signature_header(WEBHOOK_SECRET, int(time.time()), body)
    return {"content": body, "headers": {"giftcast-signature": header, "content-type": "application/json"}}


async def test_a_refund_redelivered_while_the_buyer_spends_is_applied_once(live_server, redis):
    """5 deliveries of one refund race 10 purchases: the coins come back once, nothing is lost."""
    order = await make_stores(redis).paid_order("bob")
    async with live_server.http() as provider, live_server.http(live_server.token("bob")) as buyer:
        responses = await asyncio.gather(
            *(provider.post(WEBHOOK_PATH, **refund_event(order)) for _ in range(5)),
            *(buyer.post("/v1/goods/purchases", json={"good_id": "neon_filter", "key": f"p{i}"}) for i in range(10)))
        wallet = (await buyer.get("/v1/me/wallet")).json()
        ledger = (await buyer.get("/v1/me/ledger", params={"limit": 100})).json()["entries"]
    refunds = [r.json() for r in responses[:5]]
    bought = sum(r.status_code == 201 for r in responses[5:])
    assert sorted(r["replay"] for r in refunds) == [False, True, True, True, True]
    assert [e["kind"] for e in ledger].count("refund") == 1
    assert wallet["coins"] == -99 * bought and (wallet["locked"] is not None) == (bought > 0)
    assert all(r.json()["error"]["code"] in ("account_locked", "insufficient_funds")
               for r in responses[5:] if r.status_code != 201)
    assert (await audit(redis)).ok


async def test_payment_redeliveries_racing_partial_refunds_credit_once_and_remove_each_share_once(live_server,
                                                                                                  redis):
    """The payment redelivered 5 times while two partial refunds (300 and 200 of 999 cents) are
    each delivered 3 times, all at once: one credit, each refund's share removed once."""
    order = await make_stores(redis).paid_order("bob")  # 707 coins
    payment = payment_event(order, order["payment_id"])
    async with live_server.http() as provider, live_server.http(live_server.token("bob")) as buyer:
        responses = await asyncio.gather(
            *(deliver(provider, payment, WEBHOOK_SECRET) for _ in range(5)),
            *(provider.post(WEBHOOK_PATH, **refund_event(order, f"re_{amount}", amount=amount))
              for amount in (300, 200) for _ in range(3)))
        wallet = (await buyer.get("/v1/me/wallet")).json()
        ledger = (await buyer.get("/v1/me/ledger", params={"limit": 100})).json()["entries"]
    assert [r.status_code for r in responses] == [200] * 11
    assert all(r.json()["replay"] for r in responses[:5])
    assert sorted(r.json()["replay"] for r in responses[5:]) == [False, False, True, True, True, True]
    removed = sorted(e["delta"] for e in ledger if e["kind"] == "refund")
    assert removed in ([-213, -141], [-212, -142])  # 300 first: ceil(707*300/999), or 200 first
    assert ([e["kind"] for e in ledger].count("recharge"), wallet["coins"]) == (1, 707 - 354)  # ceil(707*500/999)
    assert (await audit(redis)).ok


@pytest.mark.parametrize("change,status,code", [
    ({"reversal_id": ""}, 400, "invalid_field"),
    ({"amount": 1000}, 400, "invalid_field"),  # more than was paid (999)
    ({"amount": 0}, 400, "invalid_field"),
    ({"payment_id": "pay_other"}, 409, "order_state"),
])
async def test_bad_refund_webhooks_change_nothing(live_server, redis, change, status, code):
    order = await make_stores(redis).paid_order("bob")
    event = refund_event(order)
    data = json.loads(event["content"])
    data["data"].update(change)
    body = json.dumps(data).encode()
    headers = {"giftcast-signature": signing.signature_header(WEBHOOK_SECRET, int(time.time()), body)}
    async with live_server.http() as http:
        response = await http.post(WEBHOOK_PATH, content=body, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert await order_status(live_server, order["id"], "paid")


ADMIN_ROUTES = [
    ("GET", "/v1/admin/users/bob/wallet"), ("GET", "/v1/admin/users/bob/statement"),
    ("GET", "/v1/admin/users/bob/profile"), ("PUT", "/v1/admin/users/bob/profile"),
    ("POST", "/v1/admin/users/bob/rewards"), ("POST", "/v1/admin/users/bob/adjustments"),
    ("GET", "/v1/admin/users/alice/withdrawals"), ("GET", "/v1/admin/withdrawals"),
    ("POST", "/v1/admin/withdrawals/alice.0123456789abcdef/approve"),
    ("POST", "/v1/admin/withdrawals/alice.0123456789abcdef/reject"),
    ("POST", "/v1/admin/orders/bob.0123456789abcdef/refund"), ("GET", "/v1/admin/locked-accounts"),
    ("GET", "/v1/admin/rates"), ("POST", "/v1/admin/rates"),
]


async def test_every_admin_route_requires_the_admin_role(live_server):
    refused = []
    for role in ("viewer", "creator", "overlay"):
        async with live_server.http(live_server.token("bob", role)) as http:
            for method, path in ADMIN_ROUTES:
                response = await http.request(method, path, json={})
                refused.append((response.status_code, response.json()["error"]["code"]))
    assert refused == [(403, "forbidden")] * len(ADMIN_ROUTES) * 3
