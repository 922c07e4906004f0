"""Model-based testing: random operation sequences against the real server and `server/model.py`.

A hypothesis `RuleBasedStateMachine` drives a real giftcast (uvicorn, real WebSockets, a real
Valkey): recharges through the signed webhook (duplicated, late, stale, forged, declined, paid
twice, redelivered steps later), refunds and chargebacks through it (whole or a third, repeated,
with another reversal id, locking an account whose coins went negative), purchases of goods over HTTP, rooms
opening and closing, gifts over WebSockets (retries with the same key, conflicting keys, bad
counts, insufficient funds, locked accounts) one at a time and in concurrent batches,
admin adjustments of coins and diamonds (replays, conflicts, refused overdrafts), withdrawals
requested by creators (holding diamonds; replays, conflicts, insufficient diamonds) and rejected
by an admin (releasing them; repeated). The payout leg is not stepped: an approval
is paid by the sandbox provider's asynchronous webhook, which a step cannot wait for in order. After every step the server must agree with the pure model: each reply,
every balance, every ledger entry (`GET /v1/me/ledger`), each room's state, and the audit's
conservation totals.

The state machine runs in a worker thread (hypothesis is synchronous); every rule hands its
coroutine to the test's event loop, where the server and the clients live.

A concurrent batch has no single expected outcome: it is correct if some serial order of its
gifts, applied to the model, gives exactly the replies the server sent (linearizability; all
the batch's requests overlap in time, so any order is allowed).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (
    Bundle, RuleBasedStateMachine, invariant, multiple, rule, run_state_machine_as_test,
)

from server.audit import audit
from server.auth import Principal
from server.catalog import load_catalog
from server.codec import SendGift
from server.economy import balance_adjustment, price_gift, price_goods
from server.errors import GiftcastError
from server.model import EconomyModel, LedgerEntry
from server.profiles import Profile
from server.settings import Settings
from server.withdrawals import withdrawal_id
from tests.conftest import WEBHOOK_SECRET, LiveServer
from tests.webhooks import deliver, payment_event
from tests.ws_client import JSON, MSGPACK, Client, open_client

T = TypeVar("T")

VIEWERS = ("v0", "v1", "v2")
CREATORS = ("c0", "c1")
GIFTS = ("rose", "panda", "love_bang", "rainbow_puke")  # 1, 5, 25, 100 coins
KEYS = tuple(f"k{i}" for i in range(6))  # few keys per sender: retries and conflicts happen
BUNDLES = ("coins_70", "coins_350", "coins_700")
CATALOG = load_catalog()
RATE_BP = 10_000

# The smallest withdrawal the test server allows (creators earn a few diamonds per run), and the
# model's limit: the smaller of the day and week limits the server runs with.
WITHDRAW_MIN = 1
WITHDRAW_LIMIT = min(Settings().withdraw_day_diamonds, Settings().withdraw_week_diamonds)
GOODS = ("neon_filter", "sparkle_entrance")
REVERSALS = {"refund": "payment.refunded", "chargeback": "payment.charged_back"}
PLANS = ("once", "duplicates", "late", "stale_then_fresh", "forged", "declined_then_paid",
         "paid_then_late_decline", "second_payment")

BAD_GIFTS = (
    ({"count": 0}, "invalid_count"), ({"count": -2}, "invalid_count"), ({"count": 1.5}, "invalid_count"),
    ({"count": True}, "invalid_count"), ({"count": 10**6}, "invalid_count"), ({"count": "3"}, "invalid_count"),
    ({"count": 2**64 - 1}, "invalid_count"), ({"count": None}, "invalid_count"),
    ({"gift_id": "gold_bar"}, "unknown_gift"), ({"gift_id": "Rose!"}, "invalid_field"),
    ({"room": "c9"}, "not_in_room"), ({"key": "bad key"}, "invalid_idempotency_key"),
    ({"key": "x" * 65}, "invalid_idempotency_key"), ({"t": "gift!"}, "unknown_frame_type"),
)


@dataclasses.dataclass(frozen=True)
class GiftOp:
    sender: str
    room: str
    gift_id: str
    count: int
    key: str
    conn: int  # which of the sender's two connections (msgpack, JSON) sends it


gift_ops = st.builds(GiftOp, st.sampled_from(VIEWERS), st.sampled_from(CREATORS), st.sampled_from(GIFTS),
                     st.integers(1, 4), st.sampled_from(KEYS), st.integers(0, 1))


def reversal_event(paid_body: bytes, kind: str, reversal_id: str, amount: int) -> bytes:
    """The provider's refund or chargeback of `amount` of the payment that `paid_body` announced."""
    data = json.loads(paid_body)["data"]
    return json.dumps({"id": "evt_" + secrets.token_hex(6), "type": REVERSALS[kind], "created": int(time.time()),
                       "data": {"payment_id": data["payment_id"], "order_id": data["order_id"],
                                "reversal_id": reversal_id, "amount": amount,
                                "currency": data["currency"]}}).encode()


def expect_gift(model: EconomyModel, op: GiftOp) -> tuple[Any, ...]:
    """Apply `op` to the model; the reply the server must give, as `observed` renders it."""
    request = SendGift(None, op.room, op.gift_id, op.count, op.key)
    charge = price_gift(CATALOG, Principal(op.sender, "viewer"), request, rate_bp=RATE_BP)
    replay = (op.sender, op.key) in model.idempotency
    try:
        balance, diamonds = model.send_gift(op.sender, op.room, op.key, request.fingerprint,
                                            charge.coins, charge.diamonds)
    except GiftcastError as exc:
        return ("error", exc.code)
    return ("ack", balance, diamonds, replay)


def observed(reply: dict[str, Any]) -> tuple[Any, ...]:
    if reply["t"] == "ack":
        receipt = reply["receipt"]
        return ("ack", receipt["balance"], receipt["creator_diamonds"], receipt["replay"])
    return ("error", reply["code"])


def linearize(model: EconomyModel, ops: list[GiftOp], outcomes: list[tuple[Any, ...]]) -> EconomyModel | None:
    """The model after some serial order of `ops` that yields exactly `outcomes`, or None."""
    if not ops:
        return model
    tried = set()
    for i, (op, outcome) in enumerate(zip(ops, outcomes, strict=True)):
        if (op, outcome) in tried:
            continue
        tried.add((op, outcome))
        trial = copy.deepcopy(model)
        if expect_gift(trial, op) == outcome:
            found = linearize(trial, ops[:i] + ops[i + 1:], outcomes[:i] + outcomes[i + 1:])
            if found is not None:
                return found
    return None


class Harness:
    """The loop-side world: one server, an HTTP client per user, two sockets per viewer."""

    def __init__(self, server: LiveServer, redis: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.server, self.redis, self.loop = server, redis, loop
        self.http = {user: server.http(server.token(user, "creator" if user in CREATORS else "viewer"))
                     for user in VIEWERS + CREATORS}
        self.webhook = server.http()
        self.admin = server.http(server.token("root", "admin"))
        self.sockets: dict[str, list[Client]] = {}

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the server's loop from the state machine's thread."""
        async def call() -> T:
            return await make()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=60)

    async def reset(self) -> None:
        await self.close_sockets()
        await self.redis.flushall()
        for viewer in VIEWERS:
            token = self.server.token(viewer)
            self.sockets[viewer] = [await open_client(self.server.ws_url, token, fmt, CREATORS) for fmt in (MSGPACK, JSON)]

    async def close_sockets(self) -> None:
        for clients in self.sockets.values():
            for client in clients:
                await client.close()
        self.sockets.clear()

    async def close(self) -> None:
        await self.close_sockets()
        for client in (*self.http.values(), self.webhook, self.admin):
            await client.aclose()

    async def gift(self, op: GiftOp) -> dict[str, Any]:
        return await self.sockets[op.sender][op.conn].gift(op.room, op.gift_id, op.count, op.key)


def machine_for(h: Harness) -> type[RuleBasedStateMachine]:
    class GiftcastMachine(RuleBasedStateMachine):
        paid = Bundle("paid")
        withdrawals = Bundle("withdrawals")

        def __init__(self) -> None:
            super().__init__()
            self.model = EconomyModel()
            h.run(h.reset)

        # -- gifts ------------------------------------------------------------------------------

        @rule(op=gift_ops)
        def gift(self, op: GiftOp) -> None:
            reply = h.run(lambda: h.gift(op))
            assert observed(reply) == expect_gift(self.model, op), (op, reply)

        @rule(ops=st.lists(gift_ops, min_size=2, max_size=6))
        def concurrent_gifts(self, ops: list[GiftOp]) -> None:
            replies = h.run(lambda: asyncio.gather(*(h.gift(op) for op in ops)))
            found = linearize(self.model, ops, [observed(r) for r in replies])
            assert found is not None, f"no serial order explains {list(zip(ops, replies, strict=True))}"
            self.model = found

        @rule(viewer=st.sampled_from(VIEWERS), bad=st.sampled_from(BAD_GIFTS), key=st.sampled_from(KEYS))
        def bad_gift(self, viewer: str, bad: tuple[dict[str, Any], str], key: str) -> None:
            fields, code = bad
            frame = {"t": "gift", "room": "c0", "gift_id": "rose", "count": 1, "key": key, **fields}
            reply = h.run(lambda: h.sockets[viewer][0].request(**frame))
            assert (reply["t"], reply["code"]) == ("error", code)

        # -- rooms ------------------------------------------------------------------------------

        @rule(creator=st.sampled_from(CREATORS), opening=st.booleans())
        def set_live(self, creator: str, opening: bool) -> None:
            response = h.run(lambda: h.http[creator].post("/v1/live/open" if opening else "/v1/live/close"))
            changed = self.model.open_room(creator) if opening else self.model.close_room(creator)
            assert response.status_code == 200 and response.json()["changed"] == changed

        # -- recharges through the signed webhook ----------------------------------------------

        @rule(target=paid, viewer=st.sampled_from(VIEWERS), bundle=st.sampled_from(BUNDLES),
              plan=st.sampled_from(PLANS))
        def recharge(self, viewer: str, bundle: str, plan: str) -> Any:
            created = h.run(lambda: h.http[viewer].post("/v1/orders", json={"bundle_id": bundle}))
            assert created.status_code == 201
            order = created.json()
            self.model.create_order(order["id"], CATALOG.bundle(bundle), order["price"])
            payment = "pay_" + secrets.token_hex(6)
            body = payment_event(order, payment)

            def send(data: bytes, age_s: int = 0, secret: str = WEBHOOK_SECRET) -> Any:
                return h.run(lambda: deliver(h.webhook, data, secret, age_s=age_s))

            if plan == "forged":
                assert send(body, secret="not-the-secret").json()["error"]["code"] == "bad_signature"
                return multiple()
            if plan == "stale_then_fresh":
                assert send(body, age_s=400).json()["error"]["code"] == "stale_timestamp"
            if plan == "declined_then_paid":
                declined = send(payment_event(order, "pay_declined", succeeded=False))
                assert declined.json()["status"] == self.model.fail_order(order["id"]) == "failed"
            if plan == "duplicates":
                responses = h.run(lambda: asyncio.gather(*(deliver(h.webhook, body, WEBHOOK_SECRET) for _ in range(3))))
                assert sorted(r.json()["replay"] for r in responses) == [False, True, True]
            else:
                self.check_credit(send(body, age_s=250 if plan == "late" else 0), fresh=True)
            self.model.pay_order(order["id"], payment)
            if plan == "paid_then_late_decline":
                late = send(payment_event(order, "pay_late", succeeded=False), age_s=200)
                assert late.json()["status"] == self.model.fail_order(order["id"]) == "paid"
            if plan == "second_payment":
                other = send(payment_event(order, "pay_second"))
                assert (other.status_code, other.json()["error"]["code"]) == (409, "order_state")
            return body

        @rule(body=paid)
        def redeliver(self, body: bytes) -> None:
            response = h.run(lambda: deliver(h.webhook, body, WEBHOOK_SECRET))
            data = json.loads(body)["data"]
            try:
                self.model.pay_order(data["order_id"], data["payment_id"])  # paid: a replay
            except GiftcastError as exc:  # wholly reversed since: a success redelivered after it is refused
                assert (response.status_code, response.json()["error"]["code"]) == (exc.status, exc.code)
                return
            self.check_credit(response, fresh=False)

        # -- refunds and chargebacks through the signed webhook --------------------------------

        @rule(body=paid, kind=st.sampled_from(sorted(REVERSALS)), reversal=st.sampled_from(("r0", "r1", "r2")),
              whole=st.booleans())
        def reverse(self, body: bytes, kind: str, reversal: str, whole: bool) -> None:
            data = json.loads(body)["data"]
            amount = data["amount"] if whole else max(1, data["amount"] // 3)  # partial: a third
            response = h.run(lambda: deliver(h.webhook, reversal_event(body, kind, reversal, amount), WEBHOOK_SECRET))
            replay = reversal in self.model.orders[data["order_id"]].reversals
            try:
                _, _, locked = self.model.reverse_order(data["order_id"], kind, reversal, data["payment_id"],
                                                        amount)
            except GiftcastError as exc:
                assert (response.status_code, response.json()["error"]["code"]) == (exc.status, exc.code)
                return
            assert response.status_code == 200, response.text
            assert (response.json()["locked"], response.json()["replay"]) == (locked, replay)

        # -- goods over HTTP -------------------------------------------------------------------

        @rule(viewer=st.sampled_from(VIEWERS), good=st.sampled_from(GOODS), count=st.integers(1, 2),
              key=st.sampled_from(("b0", "b1", "b2")))
        def buy(self, viewer: str, good: str, count: int, key: str) -> None:
            purchase = price_goods(CATALOG, Principal(viewer, "viewer"), Profile(viewer), good, count, key,
                                   now_ms=int(time.time() * 1000), require_birth_date=False)
            response = h.run(lambda: h.http[viewer].post("/v1/goods/purchases",
                                                         json={"good_id": good, "count": count, "key": key}))
            replay = (viewer, "goods:" + key) in self.model.idempotency
            try:
                balance, owned = self.model.buy_goods(viewer, key, good, count, purchase.coins)
            except GiftcastError as exc:
                assert (response.status_code, response.json()["error"]["code"]) == (exc.status, exc.code)
                return
            assert response.status_code == (200 if replay else 201), response.text
            assert (response.json()["balance"], response.json()["owned"], response.json()["replay"]) == (
                balance, owned, replay)

        def check_credit(self, response: Any, *, fresh: bool) -> None:
            assert response.status_code == 200, response.text
            assert (response.json()["status"], response.json()["replay"]) == ("paid", not fresh)

        # -- admin adjustments (they also give creators diamonds to withdraw) ------------------

        @rule(user=st.sampled_from(VIEWERS + CREATORS), unit=st.sampled_from(("coins", "diamonds")),
              delta=st.sampled_from((-5, 25, 40)), key=st.sampled_from(("a0", "a1", "a2")))
        def adjust(self, user: str, unit: str, delta: int, key: str) -> None:
            change = balance_adjustment(Principal("root", "admin"), user, unit, delta, "test", key)
            response = h.run(lambda: h.admin.post(f"/v1/admin/users/{user}/adjustments",
                                                  json={"unit": unit, "delta": delta, "reason": "test", "key": key}))
            replay = (user, "grant:" + key) in self.model.idempotency
            try:
                balance = self.model.grant(user, change.kind, unit, delta, key, change.fingerprint)
            except GiftcastError as exc:
                assert (response.status_code, response.json()["error"]["code"]) == (exc.status, exc.code)
                return
            assert response.status_code == (200 if replay else 201), response.text
            assert (response.json()["balance"], response.json()["replay"]) == (balance, replay)

        # -- withdrawals: requested by a creator, rejected by an admin -------------------------

        @rule(target=withdrawals, creator=st.sampled_from(CREATORS), diamonds=st.sampled_from((1, 3, 10)),
              key=st.sampled_from(("w0", "w1", "w2")))
        def withdraw(self, creator: str, diamonds: int, key: str) -> Any:
            response = h.run(lambda: h.http[creator].post(
                "/v1/withdrawals", json={"diamonds": diamonds, "method": "paypal", "key": key}))
            wid = withdrawal_id(creator, key)
            replay = wid in self.model.withdrawals
            try:
                self.model.request_withdrawal(creator, wid, diamonds, "paypal", WITHDRAW_LIMIT)
            except GiftcastError as exc:
                assert (response.status_code, response.json()["error"]["code"]) == (exc.status, exc.code)
                return multiple()
            assert response.status_code == (200 if replay else 201), response.text
            assert (response.json()["id"], response.json()["replay"]) == (wid, replay)
            return wid

        @rule(wid=withdrawals)
        def reject(self, wid: str) -> None:
            response = h.run(lambda: h.admin.post(f"/v1/admin/withdrawals/{wid}/reject", json={"reason": "test"}))
            try:
                status, _ = self.model.settle_withdrawal(wid, "failed")
            except GiftcastError as exc:
                assert (response.status_code, response.json()["error"]["code"]) == (exc.status, exc.code)
                return
            assert (response.status_code, response.json()["status"]) == (200, status), response.text

        # -- after every step -------------------------------------------------------------------

        @invariant()
        def server_agrees_with_model(self) -> None:
            state = h.run(lambda: server_state(h))
            for user in VIEWERS + CREATORS:
                wallet, ledger = state[user]
                assert (wallet["coins"], wallet["diamonds"], wallet["diamonds_held"]) == (
                    self.model.coins.get(user, 0), self.model.diamonds.get(user, 0),
                    self.model.diamonds_held.get(user, 0)), user
                assert ledger == self.model.ledger.get(user, []), user
            for creator in CREATORS:
                assert state["rooms"][creator] == ("open" if creator in self.model.open_rooms else "closed")
            report = state["audit"]
            assert report.ok, report.problems
            assert self.model.conserved()
            assert (report.coins_credited, report.coins_adjusted, report.coins_reversed, report.coins_spent) == (
                self.model.coins_credited, self.model.coins_adjusted, self.model.coins_reversed,
                self.model.coins_spent)
            assert (report.diamonds_credited, report.diamonds_adjusted, report.diamonds_paid_out) == (
                self.model.diamonds_credited, self.model.diamonds_adjusted, self.model.diamonds_paid_out)

    return GiftcastMachine


async def server_state(h: Harness) -> dict[str, Any]:
    state: dict[str, Any] = {"rooms": {}}
    for user, http in h.http.items():
        wallet = (await http.get("/v1/me/wallet")).json()
        entries = (await http.get("/v1/me/ledger", params={"limit": 500})).json()["entries"]
        state[user] = wallet, [LedgerEntry(e["kind"], e["unit"], e["delta"], e["balance"]) for e in reversed(entries)]
    for creator in CREATORS:
        state["rooms"][creator] = (await h.http[creator].get(f"/v1/rooms/{creator}")).json()["status"]
    state["audit"] = await audit(h.redis)
    return state


async def run_machine(start_server: Callable[..., Awaitable[LiveServer]], redis: Any, **profile: Any) -> None:
    # Rate limits are time-based, which the model is not: off here (tests/test_ratelimit.py has them).
    harness = Harness(await start_server(withdraw_min_diamonds=WITHDRAW_MIN, gift_rate_per_s=0, frame_rate_per_s=0, user_frame_rate_per_s=0), redis, asyncio.get_running_loop())
    try:
        await asyncio.to_thread(
            run_state_machine_as_test, machine_for(harness),
            settings=settings(deadline=None, suppress_health_check=list(HealthCheck), **profile))
    finally:
        await harness.close()


async def test_server_agrees_with_the_model_over_random_operation_sequences(start_server, redis):
    await run_machine(start_server, redis, max_examples=20, stateful_step_count=12)


@pytest.mark.slow
async def test_server_agrees_with_the_model_over_long_sequences(start_server, redis):
    await run_machine(start_server, redis, max_examples=150, stateful_step_count=40)
