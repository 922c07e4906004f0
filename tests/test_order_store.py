"""Recharge orders on a real Valkey: created pending, credited exactly once, failures."""

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift, recharge_credit
from server.errors import AccountLocked, InvalidField, OrderState, UnknownOrder
from server.order_store import buyer_of
from server.wallet_store import Balances
from tests.factories import catalog_with, make_stores, running_campaigns


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


# --- campaigns ------------------------------------------------------------------------------------

@pytest.fixture
def promo_stores(redis):
    return make_stores(redis, catalog=catalog_with(running_campaigns()))


async def test_campaign_bonuses_are_separate_entries_credited_once(promo_stores):
    order = await new_order(promo_stores)
    first = await promo_stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    again = await promo_stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    assert (first.credited, again.credited, again.replay) == (877, 877, True)  # 700 + 7 + 70 + 100
    reasons = [(e["kind"], e.get("reason"), e["delta"]) for e in reversed(await promo_stores.wallets.ledger("bob"))]
    assert reasons == [("recharge", None, 700), ("bonus", "bundle_bonus", 7), ("bonus", "campaign:spring", 70),
                       ("bonus", "first_recharge:hello", 100)]


async def test_only_the_first_paid_recharge_gets_the_first_recharge_bonus(promo_stores, valkey_url):
    """Two orders made while both looked "first", paid at once on two connections: one bonus."""
    orders = [await new_order(promo_stores) for _ in range(2)]
    clients = [aioredis.Redis.from_url(valkey_url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(
            make_stores(client).orders.credit(order["id"], f"pay_{i}", 999, "USD", "card")
            for i, (client, order) in enumerate(zip(clients, orders, strict=True))))
    finally:
        for client in clients:
            await client.aclose()
    assert sorted(r.credited for r in results) == [777, 877]
    assert (await promo_stores.wallets.balances("bob")).coins == 1654


# --- refunds and chargebacks ------------------------------------------------------------------------

async def paid_order(stores, user="bob"):
    order = await new_order(stores, user)
    await stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    return order


async def test_refund_before_spending_removes_the_coins(stores):
    order = await paid_order(stores)
    result = await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 999, "USD")
    assert (result.balance, result.removed, result.locked) == (0, 707, False)
    assert (await stores.orders.get(order["id"]))["status"] == "refunded"
    entry = (await stores.wallets.ledger("bob"))[0]
    assert (entry["kind"], entry["delta"], entry["reversal"]) == ("refund", -707, "re_1")


async def test_chargeback_after_spending_leaves_a_locked_negative_wallet(stores):
    order = await paid_order(stores)
    await stores.lives.set_state("alice", "open")
    await stores.wallets.apply_gift(price_gift(stores.catalog, Principal("bob", "viewer"),
                                               SendGift(1, "alice", "concert", 1, "g1"), rate_bp=10_000))
    result = await stores.orders.reverse(order["id"], "chargeback", "dp_1", "pay_1", 999, "USD")
    balances = await stores.wallets.balances("bob")
    assert (result.balance, result.locked, balances.locked) == (-500, True, f"chargeback:{order['id']}")
    assert (await stores.wallets.ledger("bob"))[0]["locked"] == "1"


async def test_a_locked_account_cannot_gift(stores):
    await stores.lock_by_chargeback()
    await stores.set_coins("bob", 500)  # a recharge that does not clear the debt (-700 + 500)
    with pytest.raises(AccountLocked):
        await stores.wallets.apply_gift(price_gift(stores.catalog, Principal("bob", "viewer"),
                                                   SendGift(1, "alice", "rose", 1, "g2"), rate_bp=10_000))


async def test_a_recharge_that_settles_the_debt_unlocks(stores):
    await stores.lock_by_chargeback()
    await stores.set_coins("bob", 699)
    assert (await stores.wallets.balances("bob")).locked is not None
    await stores.set_coins("bob", 1)
    assert (await stores.wallets.balances("bob")) == Balances(0, 0, 0, None)
    assert (await stores.wallets.ledger("bob"))[0]["kind"] == "unlock"


async def test_reversal_redelivered_changes_nothing(stores):
    order = await paid_order(stores)
    await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 999, "USD")
    again = await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 999, "USD")
    assert again.replay and (await stores.wallets.balances("bob")).coins == 0
    assert len(await stores.wallets.ledger("bob")) == 3


@pytest.mark.parametrize("args,error", [
    (("refund", "re_2", "pay_1", 999, "USD"), OrderState),      # already refunded by re_1
    (("chargeback", "dp_1", "pay_1", 999, "USD"), OrderState),  # a second reversal
])
async def test_a_second_reversal_is_refused(stores, args, error):
    order = await paid_order(stores)
    await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 999, "USD")
    with pytest.raises(error):
        await stores.orders.reverse(order["id"], *args)
    assert (await stores.wallets.balances("bob")).coins == 0


@pytest.mark.parametrize("args,error", [
    (("refund", "re_1", "pay_9", 999, "USD"), OrderState),  # another payment
    (("refund", "re_1", "pay_1", 1000, "USD"), InvalidField),  # more than was paid
    (("refund", "re_1", "pay_1", 0, "USD"), InvalidField),
    (("refund", "re_1", "pay_1", 999, "EUR"), InvalidField),
    (("bounce", "re_1", "pay_1", 999, "USD"), InvalidField),
])
async def test_bad_reversals_change_nothing(stores, args, error):
    order = await paid_order(stores)
    with pytest.raises(error):
        await stores.orders.reverse(order["id"], *args)
    assert (await stores.orders.get(order["id"]))["status"] == "paid"
    assert (await stores.wallets.balances("bob")).coins == 707


async def test_a_partial_refund_removes_that_share_of_the_coins(stores):
    order = await paid_order(stores)  # 707 coins for 999 cents
    result = await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 500, "USD")
    assert (result.balance, result.removed, result.locked) == (707 - 354, 354, False)  # ceil(707 * 500 / 999)
    stored = await stores.orders.get(order["id"])
    assert (stored["status"], stored["reversed_amount"], stored["reversals"]) == (
        "paid", 500, {"re_1": {"amount": 500, "coins": 354}})
    entry = (await stores.wallets.ledger("bob"))[0]
    assert (entry["kind"], entry["delta"], entry["amount"], entry["currency"]) == ("refund", -354, 500, "USD")


async def test_partial_refunds_adding_up_to_the_payment_remove_every_coin(stores):
    order = await paid_order(stores)
    removed = [(await stores.orders.reverse(order["id"], "refund", f"re_{i}", "pay_1", part, "USD")).removed
               for i, part in enumerate([1, 1, 997])]
    assert (removed, sum(removed)) == ([1, 1, 705], 707)
    assert (await stores.orders.get(order["id"]))["status"] == "refunded"
    assert (await stores.wallets.balances("bob")).coins == 0


async def test_a_refund_beyond_what_is_left_of_the_payment_changes_nothing(stores):
    order = await paid_order(stores)
    await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 500, "USD")
    with pytest.raises(InvalidField):
        await stores.orders.reverse(order["id"], "refund", "re_2", "pay_1", 500, "USD")
    assert ((await stores.orders.get(order["id"]))["reversed_amount"],
            (await stores.wallets.balances("bob")).coins) == (500, 353)


async def test_a_partial_refund_redelivered_removes_once_and_its_id_keeps_its_amount(stores):
    order = await paid_order(stores)
    await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 500, "USD")
    again = await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 500, "USD")
    assert (again.replay, again.removed, again.balance) == (True, 354, 353)
    with pytest.raises(InvalidField):
        await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 400, "USD")
    assert len(await stores.wallets.ledger("bob")) == 3


async def test_a_chargeback_of_the_rest_after_a_partial_refund_completes_the_reversal(stores):
    order = await paid_order(stores)
    await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 500, "USD")
    await stores.lives.set_state("alice", "open")
    await stores.wallets.apply_gift(price_gift(stores.catalog, Principal("bob", "viewer"),
                                               SendGift(1, "alice", "rainbow_puke", 3, "g1"), rate_bp=10_000))
    result = await stores.orders.reverse(order["id"], "chargeback", "dp_1", "pay_1", 499, "USD")
    assert (result.balance, result.removed, result.locked) == (353 - 300 - 353, 353, True)
    assert (await stores.orders.get(order["id"]))["status"] == "charged_back"


async def test_an_unpaid_order_cannot_be_reversed(stores):
    order = await new_order(stores)
    with pytest.raises(OrderState):
        await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 999, "USD")


async def test_payment_redelivered_after_a_refund_credits_nothing(stores):
    order = await paid_order(stores)
    await stores.orders.reverse(order["id"], "refund", "re_1", "pay_1", 999, "USD")
    with pytest.raises(OrderState):
        await stores.orders.credit(order["id"], "pay_1", 999, "USD", "card")
    assert (await stores.wallets.balances("bob")).coins == 0
