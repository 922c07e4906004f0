"""Withdrawals on a real Valkey: atomic holds, limits, races, and the payout state machine."""

import asyncio

import pytest
import redis.asyncio as aioredis

from server.audit import audit
from server.auth import Principal
from server.errors import (
    IdempotencyConflict, InsufficientFunds, InvalidField, UnknownWithdrawal, WithdrawalLimit, WithdrawalState,
)
from server.profiles import Profile
from server.withdrawals import quote_withdrawal
from tests.factories import make_stores

ALICE = Principal("alice", "creator")


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis)
    await stores.set_diamonds("alice", 10_000)
    return stores


def quote(stores, diamonds=4_000, key="w1", method="paypal"):
    return quote_withdrawal(stores.catalog, ALICE, Profile("alice"), diamonds, method, key, now_ms=0,
                            limits=stores.bank.withdrawal_limits)


async def hold(stores, diamonds=4_000, key="w1"):
    return await stores.bank.withdrawals.request(quote(stores, diamonds, key))


async def test_request_holds_the_diamonds_as_two_ledger_entries(stores):
    result = await hold(stores)
    assert (result.diamonds, result.diamonds_held, result.replay) == (6_000, 4_000, False)
    withdrawal = await stores.bank.withdrawals.get(result.withdrawal_id)
    assert (withdrawal["status"], withdrawal["cash"], withdrawal["currency"], withdrawal["rate_version"]) == (
        "pending", 2_000, "USD", 1)
    entries = [(e["kind"], e["unit"], e["delta"]) for e in await stores.wallets.ledger("alice", limit=2)]
    assert entries == [("withdrawal_hold", "diamonds_held", 4_000), ("withdrawal_hold", "diamonds", -4_000)]
    assert [w["id"] for w in await stores.bank.withdrawals.awaiting_review()] == [result.withdrawal_id]


async def test_same_key_holds_once(stores):
    await hold(stores)
    again = await hold(stores)
    assert again.replay and (await stores.wallets.balances("alice")).diamonds == 6_000


async def test_same_key_for_another_amount_is_a_conflict(stores):
    await hold(stores)
    with pytest.raises(IdempotencyConflict):
        await hold(stores, 5_000)


async def test_more_than_the_balance_changes_nothing(stores):
    with pytest.raises(InsufficientFunds):
        await hold(stores, 10_001)
    assert (await stores.wallets.balances("alice")).diamonds_held == 0
    assert await stores.bank.withdrawals.list("alice") == []


async def test_day_limit_counts_every_request_of_the_day(redis):
    stores = make_stores(redis, withdraw_day_diamonds=5_000)
    await stores.set_diamonds("alice", 10_000)
    await hold(stores, 3_000, "w1")
    with pytest.raises(WithdrawalLimit):
        await hold(stores, 2_001, "w2")
    assert (await hold(stores, 2_000, "w3")).diamonds_held == 5_000


async def test_week_limit(redis):
    stores = make_stores(redis, withdraw_min_diamonds=1_000, withdraw_day_diamonds=2_000,
                         withdraw_week_diamonds=2_500)
    await stores.set_diamonds("alice", 10_000)
    await hold(stores, 2_000, "w1")
    with pytest.raises(WithdrawalLimit):
        await hold(stores, 1_000, "w2")


async def test_racing_requests_never_hold_more_than_the_balance(stores, valkey_url):
    """20 requests of 2,000 diamonds against 10,000, on 5 connections at once: exactly 5 hold."""
    clients = [aioredis.Redis.from_url(valkey_url) for _ in range(5)]
    try:
        per_client = [make_stores(client) for client in clients]

        async def ask(i):
            store = per_client[i % 5]
            try:
                await store.bank.withdrawals.request(quote(store, 2_000, f"race{i}"))
                return True
            except InsufficientFunds:
                return False

        results = await asyncio.gather(*(ask(i) for i in range(20)))
    finally:
        for client in clients:
            await client.aclose()
    balances = await stores.wallets.balances("alice")
    assert results.count(True) == 5 and (balances.diamonds, balances.diamonds_held) == (0, 10_000)
    assert (await audit(stores.redis)).ok


async def test_paid_pays_out_the_held_diamonds(stores):
    wid = (await hold(stores)).withdrawal_id
    withdrawals = stores.bank.withdrawals
    assert await withdrawals.step(wid, "processing", payout_id="po_1", who="root") == ("processing", False)
    assert await withdrawals.step(wid, "paid", payout_id="po_1", who="provider", cash=2_000,
                                  currency="USD") == ("paid", False)
    entry = (await stores.wallets.ledger("alice"))[0]
    assert (entry["kind"], entry["unit"], entry["delta"], entry["cash"]) == ("payout", "diamonds_held", -4_000, 2_000)
    assert (await stores.wallets.balances("alice")).diamonds_held == 0
    report = await audit(stores.redis)
    assert report.ok and report.diamonds_paid_out == 4_000


async def test_failed_payout_returns_the_diamonds(stores):
    wid = (await hold(stores)).withdrawal_id
    await stores.bank.withdrawals.step(wid, "processing", payout_id="po_1", who="root")
    await stores.bank.withdrawals.step(wid, "failed", payout_id="po_1", who="provider", reason="account_closed")
    balances = await stores.wallets.balances("alice")
    assert (balances.diamonds, balances.diamonds_held) == (10_000, 0)
    assert (await stores.bank.withdrawals.get(wid))["failure"] == "account_closed"
    assert (await audit(stores.redis)).ok


async def test_rejecting_a_pending_withdrawal_returns_the_diamonds(stores):
    wid = (await hold(stores)).withdrawal_id
    await stores.bank.withdrawals.step(wid, "failed", who="root", reason="documents missing")
    assert (await stores.wallets.balances("alice")).diamonds == 10_000
    assert await stores.bank.withdrawals.awaiting_review() == []


async def test_repeated_steps_are_replays(stores):
    wid = (await hold(stores)).withdrawal_id
    withdrawals = stores.bank.withdrawals
    await withdrawals.step(wid, "processing", payout_id="po_1", who="root")
    assert (await withdrawals.step(wid, "processing", payout_id="po_1", who="root"))[1]
    await withdrawals.step(wid, "paid", payout_id="po_1", who="provider", cash=2_000, currency="USD")
    assert await withdrawals.step(wid, "paid", payout_id="po_1", who="provider", cash=2_000,
                                  currency="USD") == ("paid", True)
    # a late failure never undoes a payout
    assert await withdrawals.step(wid, "failed", payout_id="po_1", who="provider") == ("paid", True)
    assert (await audit(stores.redis)).ok


@pytest.mark.parametrize("steps,bad,error", [
    ([], ("paid", "po_1", 2_000, "USD"), WithdrawalState),                              # not processing yet
    ([("processing", "po_1")], ("paid", "po_2", 2_000, "USD"), WithdrawalState),        # another payout
    ([("processing", "po_1")], ("paid", "po_1", 1_999, "USD"), InvalidField),           # another amount
    ([("processing", "po_1")], ("processing", "po_2", 0, ""), WithdrawalState),         # approved twice
    ([("processing", "po_1")], ("failed", "", 0, ""), WithdrawalState),                 # reject after approval
    ([("failed", "")], ("paid", "", 2_000, "USD"), WithdrawalState),                    # paid after rejection
    ([("failed", "")], ("processing", "po_1", 0, ""), WithdrawalState),
    ([], ("processing", "", 0, ""), InvalidField),                                      # no payout id
])
async def test_steps_out_of_order_change_nothing(stores, steps, bad, error):
    wid = (await hold(stores)).withdrawal_id
    for step, payout in steps:
        await stores.bank.withdrawals.step(wid, step, payout_id=payout, who="root")
    before = await stores.wallets.balances("alice"), await stores.bank.withdrawals.get(wid)
    step, payout, cash, currency = bad
    with pytest.raises(error):
        await stores.bank.withdrawals.step(wid, step, payout_id=payout, who="x", cash=cash, currency=currency)
    assert (await stores.wallets.balances("alice"), await stores.bank.withdrawals.get(wid)) == before


async def test_unknown_withdrawal(stores):
    with pytest.raises(UnknownWithdrawal):
        await stores.bank.withdrawals.step("alice.0123456789abcdef", "failed", who="root")
    with pytest.raises(UnknownWithdrawal):
        await stores.bank.withdrawals.get("alice.0123456789abcdef")
