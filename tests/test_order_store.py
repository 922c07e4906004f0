"""Recharge orders on a real Valkey: created pending, credited exactly once, failures."""

import time

import pytest

from server import keys
from server.economy import recharge_credit
from server.errors import InvalidField, OrderState, UnknownOrder
from server.order_store import buyer_of
from tests.factories import make_stores


NOW_MS = int(time.time() * 1000)


@pytest.fixture
def stores(redis):
    return make_stores(redis)


async def new_order(stores, user="bob", bundle_id="coins_700"):
    bundle = stores.catalog.bundle(bundle_id)
    return await stores.orders.create(user, bundle, recharge_credit(stores.catalog, bundle, None, now_ms=NOW_MS), "card")


async def test_new_order_is_pending_and_listed(stores):
    order = await new_order(stores)
    assert (await stores.orders.get(order["id"]))["status"] == "pending"
    assert [o["id"] for o in await stores.orders.list("bob")] == [order["id"]]


async def test_credit_adds_coins_and_bonus_as_separate_ledger_entries(stores):
    order = await new_order(stores)
    result = await stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    assert (result.balance, result.credited, result.replay) == (707, 707, False)
    kinds = [(e["kind"], e["delta"]) for e in reversed(await stores.wallets.ledger("bob"))]
    assert kinds == [("recharge", 700), ("bonus", 7)]


async def test_redelivered_payment_credits_once(stores):
    order = await new_order(stores)
    await stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    again = await stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    assert again.replay and (await stores.wallets.balances("bob")).coins == 707
    assert len(await stores.wallets.ledger("bob")) == 2


async def test_second_payment_for_a_paid_order_is_refused(stores):
    order = await new_order(stores)
    await stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    with pytest.raises(OrderState):
        await stores.orders.credit(order["id"], "pay_2", 999, "USD", "card")
    assert (await stores.wallets.balances("bob")).coins == 707


async def test_mismatched_amount_changes_nothing(stores):
    order = await new_order(stores)
    for amount, currency in [(998, "USD"), (999, "EUR"), (-999, "USD")]:
        with pytest.raises(InvalidField):
            await stores.orders.credit(order["id"], "pay_1", amount, currency, "card")
    assert (await stores.orders.get(order["id"]))["status"] == "pending"
    assert (await stores.wallets.balances("bob")).coins == 0


async def test_unknown_order_changes_nothing(stores, redis):
    with pytest.raises(UnknownOrder):
        await stores.orders.credit("bob.0123456789abcdef", "pay_1", 999, "USD", "card")
    assert await redis.dbsize() == 0


@pytest.mark.parametrize("order_id", ["", "bob", "bob.short", "a b.0123456789abcdef", None, 5, "x.y.z"])
def test_malformed_order_ids_are_unknown(order_id):
    with pytest.raises(UnknownOrder):
        buyer_of(order_id)


async def test_failed_payment_marks_order_failed_without_coins(stores):
    order = await new_order(stores)
    assert await stores.orders.fail(order["id"], "pay_1", "card_declined") == "failed"
    assert (await stores.wallets.balances("bob")).coins == 0


async def test_late_failure_never_undoes_a_success(stores):
    order = await new_order(stores)
    await stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    assert await stores.orders.fail(order["id"], "pay_0", "card_declined") == "paid"
    assert (await stores.wallets.balances("bob")).coins == 707


async def test_success_after_a_declined_attempt_credits(stores):
    order = await new_order(stores)
    await stores.orders.fail(order["id"], "pay_1", "card_declined")
    result = await stores.orders.credit(order["id"], "pay_2", 999, "USD", "card")
    assert result.balance == 707


async def test_order_keys_live_in_the_buyer_slot(stores):
    order = await new_order(stores)
    assert keys.order("bob", order["id"]).count("{u:bob}") == 1
