"""Withdrawals over HTTP on a real server: a creator asks, an admin approves, the sandbox
provider pays out through the signed payout webhook (or fails), exactly once."""

import json
import time

import pytest

from server import signing
from server.audit import audit
from server.payments import PAYOUT_WEBHOOK_PATH
from tests.conftest import WEBHOOK_SECRET, wait_until
from tests.factories import make_stores


@pytest.fixture
async def creator(live_server, redis):
    await make_stores(redis).set_diamonds("alice", 10_000)
    return live_server.http(live_server.token("alice", "creator"))


async def ask(creator, diamonds=4_000, key="w1", method="bank"):
    async with creator as http:
        return await http.post("/v1/withdrawals", json={"diamonds": diamonds, "method": method, "key": key})


async def status_is(server, withdrawal_id, status):
    async with server.http(server.token("root", "admin")) as http:
        return (await http.get(f"/v1/withdrawals/{withdrawal_id}")).json()["status"] == status


async def approve(server, withdrawal_id, **body):
    async with server.http(server.token("root", "admin")) as http:
        return await http.post(f"/v1/admin/withdrawals/{withdrawal_id}/approve", json=body)


async def test_a_withdrawal_is_held_then_paid_once_through_the_provider(live_server, creator, redis):
    withdrawal = (await ask(creator)).json()
    assert (withdrawal["status"], withdrawal["cash"], withdrawal["currency"]) == ("pending", 2_000, "USD")
    approved = await approve(live_server, withdrawal["id"], deliveries=3)
    assert (approved.status_code, approved.json()["status"]) == (202, "processing")
    await wait_until(lambda: status_is(live_server, withdrawal["id"], "paid"))
    async with live_server.http(live_server.token("alice", "creator")) as http:
        wallet = (await http.get("/v1/me/wallet")).json()
        ledger = (await http.get("/v1/me/ledger")).json()["entries"]
    assert (wallet["diamonds"], wallet["diamonds_held"]) == (6_000, 0)
    assert [e["kind"] for e in ledger].count("payout") == 1
    report = await audit(redis)
    assert report.ok and report.diamonds_paid_out == 4_000


async def test_a_failed_payout_returns_the_diamonds(live_server, creator):
    withdrawal = (await ask(creator)).json()
    await approve(live_server, withdrawal["id"], outcome="fail")
    await wait_until(lambda: status_is(live_server, withdrawal["id"], "failed"))
    async with live_server.http(live_server.token("alice", "creator")) as http:
        wallet = (await http.get("/v1/me/wallet")).json()
    assert (wallet["diamonds"], wallet["diamonds_held"]) == (10_000, 0)


async def test_admins_review_the_queue_and_may_reject(live_server, creator):
    withdrawal = (await ask(creator)).json()
    async with live_server.http(live_server.token("root", "admin")) as http:
        queue = (await http.get("/v1/admin/withdrawals")).json()["withdrawals"]
        rejected = (await http.post(f"/v1/admin/withdrawals/{withdrawal['id']}/reject",
                                    json={"reason": "tax form missing"})).json()
        after = (await http.get("/v1/admin/withdrawals")).json()["withdrawals"]
        again = await http.post(f"/v1/admin/withdrawals/{withdrawal['id']}/approve", json={})
    assert [w["id"] for w in queue] == [withdrawal["id"]] and after == []
    assert (rejected["status"], rejected["failure"]) == ("failed", "tax form missing")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "withdrawal_state")


async def test_retry_with_the_same_key_holds_once(creator, live_server):
    first = await ask(creator)
    async with live_server.http(live_server.token("alice", "creator")) as http:
        again = await http.post("/v1/withdrawals", json={"diamonds": 4_000, "method": "bank", "key": "w1"})
        listed = (await http.get("/v1/me/withdrawals")).json()["withdrawals"]
    assert (first.status_code, again.status_code, again.json()["replay"]) == (201, 200, True)
    assert len(listed) == 1


@pytest.mark.parametrize("body,status,code", [
    ({"diamonds": 1_000, "key": "a"}, 400, "below_minimum"),
    ({"diamonds": 20_000, "key": "a"}, 409, "insufficient_funds"),
    ({"diamonds": 250_000, "key": "a"}, 409, "withdrawal_limit"),
    ({"diamonds": 4_000, "key": "a", "method": "cash"}, 400, "invalid_field"),
    ({"diamonds": 4_000}, 400, "invalid_idempotency_key"),
    ({"diamonds": "4000", "key": "a"}, 400, "invalid_count"),
])
async def test_bad_withdrawals_change_nothing(live_server, redis, body, status, code):
    await make_stores(redis).set_diamonds("alice", 300_000 if code == "withdrawal_limit" else 10_000)
    async with live_server.http(live_server.token("alice", "creator")) as http:
        response = await http.post("/v1/withdrawals", json=body)
        wallet = (await http.get("/v1/me/wallet")).json()
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert wallet["diamonds_held"] == 0


async def test_only_creators_withdraw_and_only_admins_review(live_server, creator):
    withdrawal = (await ask(creator)).json()
    async with live_server.http(live_server.token("bob")) as http:
        assert (await http.post("/v1/withdrawals", json={"diamonds": 4_000, "key": "x"})).status_code == 403
        assert (await http.get(f"/v1/withdrawals/{withdrawal['id']}")).status_code == 404
        assert (await http.get("/v1/admin/withdrawals")).status_code == 403
        assert (await http.post(f"/v1/admin/withdrawals/{withdrawal['id']}/approve", json={})).status_code == 403


def payout_event(withdrawal, kind="payout.paid", payout_id="po_x", secret=WEBHOOK_SECRET, amount=None):
    body = json.dumps({"id": "evt_1", "type": kind, "created": 0, "data": {
        "payout_id": payout_id, "withdrawal_id": withdrawal["id"], "amount": amount or withdrawal["cash"],
        "currency": withdrawal["currency"]}}).encode()
    header = signing.signature_header(secret, int(time.time()), body)
    return {"content": body, "headers": {"giftcast-signature": header, "content-type": "application/json"}}


@pytest.mark.parametrize("kwargs,status,code", [
    ({"secret": "wrong"}, 401, "bad_signature"),
    ({"kind": "payout.reversed"}, 400, "bad_request"),
    ({"payout_id": ""}, 400, "invalid_field"),
    ({}, 409, "withdrawal_state"),  # paid before it was approved
])
async def test_bad_payout_webhooks_change_nothing(live_server, creator, kwargs, status, code):
    withdrawal = (await ask(creator)).json()
    async with live_server.http() as http:
        response = await http.post(PAYOUT_WEBHOOK_PATH, **payout_event(withdrawal, **kwargs))
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert await status_is(live_server, withdrawal["id"], "pending")


async def test_without_the_sandbox_an_approval_waits_for_the_providers_webhook(start_server, redis):
    server = await start_server(sandbox_payments=False)
    await make_stores(redis).set_diamonds("alice", 10_000)
    withdrawal = (await ask(server.http(server.token("alice", "creator")))).json()
    approved = (await approve(server, withdrawal["id"])).json()
    async with server.http() as http:
        wrong = await http.post(PAYOUT_WEBHOOK_PATH, **payout_event(approved, payout_id=approved["payout_id"],
                                                                    amount=1))
        paid = await http.post(PAYOUT_WEBHOOK_PATH, **payout_event(approved, payout_id=approved["payout_id"]))
        again = await http.post(PAYOUT_WEBHOOK_PATH, **payout_event(approved, payout_id=approved["payout_id"]))
    assert approved["status"] == "processing"
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, "invalid_field")
    assert (paid.json(), again.json()["replay"]) == (
        {"withdrawal_id": withdrawal["id"], "status": "paid", "replay": False}, True)
