"""The audit replays the ledgers: it passes on a consistent book and catches tampering.

The random-economy test runs every kind of movement against the real scripts and the pure
model (`server/model.py`) side by side, comparing each result, then every balance, then the
audit's totals with the model's.
"""

import random

import pytest

from server import keys
from server.audit import KIND_UNITS, audit
from server.auth import Principal
from server.codec import SendGift
from server.economy import balance_adjustment, price_gift, price_goods, recharge_credit, reward_grant
from server.errors import GiftcastError, InsufficientFunds, RoomClosed
from server.model import EconomyModel, LedgerEntry
from server.profiles import Profile
from server.withdrawals import quote_withdrawal
from tests.factories import catalog_with, make_split_gifts, make_stores, now_ms, running_campaigns

CREATORS = ["alice", "ann"]
VIEWERS = ["bob", "carol", "dave"]
ADMIN = Principal("root", "admin")
SPEND_CAP, WITHDRAW_LIMIT = 3_000, 2_000


@pytest.fixture
def stores(redis):
    return make_stores(redis)


class Run:
    """One random economy: each step applied to the store and the model, results compared."""

    def __init__(self, stores, model: EconomyModel, seed: int, gifts=None):
        """`gifts` applies the gifts: `stores.wallets` (one node, the default) or a SplitGiftStore."""
        self.stores, self.model, self.rng = stores, model, random.Random(seed)
        self.amounts = random.Random(seed)  # reversal amounts: their own draws leave the seed's sequence as it was
        self.gifts = gifts or stores.wallets
        self.paid: list[dict] = []
        self.withdrawals: list[str] = []

    async def same(self, store_call, model_call, project=lambda result: result):
        """Apply to both; both raise the same error leaf, or the projections agree."""
        try:
            expected = model_call()
        except GiftcastError as exc:
            with pytest.raises(type(exc)):
                await store_call()
            return None
        result = await store_call()
        assert project(result) == expected
        return result

    async def recharge(self, step: int) -> None:
        user, stores = self.rng.choice(VIEWERS), self.stores
        bundle = stores.catalog.bundle(self.rng.choice(["coins_70", "coins_350"]))
        credit = recharge_credit(stores.catalog, bundle, None, now_ms=now_ms())
        order = await stores.orders.create(user, bundle, credit, "card")
        self.model.create_order(order["id"], bundle, order["price"], credit.promotion)
        await self.same(lambda: stores.orders.credit(order["id"], f"p{step}", order["price"], "USD", "card"),
                        lambda: self.model.pay_order(order["id"], f"p{step}"), lambda r: 0 if r.replay else r.credited)
        self.paid.append(order | {"payment_id": f"p{step}"})

    async def reverse(self) -> None:
        if not self.paid:
            return
        order = self.rng.choice(self.paid)
        kind, reversal = self.rng.choice(["refund", "chargeback"]), f"r{self.rng.randrange(3)}"
        amount = self.amounts.choice([order["price"], self.amounts.randint(1, order["price"])])  # whole or a part
        await self.same(
            lambda: self.stores.orders.reverse(order["id"], kind, reversal, order["payment_id"], amount, "USD"),
            lambda: self.model.reverse_order(order["id"], kind, reversal, order["payment_id"], amount),
            lambda r: (r.balance, r.removed, r.locked))

    async def gift(self, step: int) -> None:
        sender, creator = self.rng.choice(VIEWERS), self.rng.choice(CREATORS)
        key = f"k{self.rng.randrange(40)}"  # keys repeat: some sends are retries or conflicts
        request = SendGift(step, creator, self.rng.choice(["rose", "panda", "love_bang", "rainbow_puke"]),
                           self.rng.randint(1, 5), key)
        charge = price_gift(self.stores.catalog, Principal(sender, "viewer"), request, rate_bp=7_000)
        await self.same(lambda: self.gifts.apply_gift(charge),
                        lambda: self.model.send_gift(sender, creator, key, request.fingerprint, charge.coins,
                                                     charge.diamonds),
                        lambda r: (r.balance, r.creator_diamonds))

    async def buy(self) -> None:
        buyer, key = self.rng.choice(VIEWERS), f"b{self.rng.randrange(10)}"
        purchase = price_goods(self.stores.catalog, Principal(buyer, "viewer"), Profile(buyer),
                               self.rng.choice(["neon_filter", "sparkle_entrance"]), self.rng.randint(1, 2), key,
                               now_ms=now_ms(), require_birth_date=False)
        await self.same(lambda: self.stores.bank.goods.buy(purchase),
                        lambda: self.model.buy_goods(buyer, key, purchase.good.id, purchase.count, purchase.coins),
                        lambda r: (r.balance, r.owned))

    async def withdraw(self) -> None:
        creator = self.rng.choice(CREATORS)
        quote = quote_withdrawal(self.stores.catalog, Principal(creator, "creator"), Profile(creator),
                                 self.rng.choice([100, 300, 900]), "paypal", f"w{self.rng.randrange(8)}",
                                 now_ms=now_ms(), limits=self.stores.bank.withdrawal_limits)
        await self.same(lambda: self.stores.bank.withdrawals.request(quote),
                        lambda: self.model.request_withdrawal(creator, quote.id, quote.diamonds, quote.method,
                                                              WITHDRAW_LIMIT),
                        lambda r: (r.diamonds, r.diamonds_held))
        self.withdrawals.append(quote.id)

    async def settle(self) -> None:
        if not self.withdrawals:
            return
        wid = self.rng.choice(self.withdrawals)
        step, payout = self.rng.choice([("processing", "po1"), ("paid", "po1"), ("failed", "po1"), ("failed", "")])
        cash = 0
        if wid in self.model.withdrawals:  # what the provider pays: the withdrawal's cash value
            cash = self.model.withdrawals[wid].diamonds * 500 // 1000
        await self.same(lambda: self.stores.bank.withdrawals.step(wid, step, payout_id=payout, who="root",
                                                                 cash=cash, currency="USD"),
                        lambda: self.model.settle_withdrawal(wid, step, payout))

    async def grant(self) -> None:
        user, key = self.rng.choice(VIEWERS + CREATORS), f"a{self.rng.randrange(6)}"
        if self.rng.random() < 0.5:
            change = reward_grant(ADMIN, user, self.rng.choice([10, 50]), "streak reward", key)
        else:
            change = balance_adjustment(ADMIN, user, self.rng.choice(["coins", "diamonds"]),
                                        self.rng.choice([-40, -5, 25]), "correction", key)
        await self.same(lambda: self.stores.bank.accounts.grant(change),
                        lambda: self.model.grant(user, change.kind, change.unit, change.delta, key,
                                                 change.fingerprint),
                        lambda r: r[0])

    async def room(self) -> None:
        creator = self.rng.choice(CREATORS)
        state = "closed" if creator in self.model.open_rooms else "open"
        await self.stores.lives.set_state(creator, state)
        (self.model.close_room if state == "closed" else self.model.open_room)(creator)

    async def play(self, steps: int) -> None:
        actions = [(0.14, self.recharge), (0.05, self.reverse), (0.10, self.buy), (0.10, self.withdraw),
                   (0.10, self.settle), (0.06, self.grant), (0.07, self.room)]
        for step in range(steps):
            roll, chosen = self.rng.random(), self.gift
            for share, action in actions:
                if roll < share:
                    chosen = action
                    break
                roll -= share
            await (chosen(step) if chosen in (self.recharge, self.gift) else chosen())


def random_stores(client):
    return make_stores(client, catalog=catalog_with(running_campaigns(first_coins=30)), spend_cap_day_coins=SPEND_CAP,
                       spend_cap_week_coins=SPEND_CAP, withdraw_min_diamonds=100,
                       withdraw_day_diamonds=WITHDRAW_LIMIT, withdraw_week_diamonds=WITHDRAW_LIMIT)


async def check_random_economy(stores, gifts=None) -> None:
    model = EconomyModel(spend_cap=SPEND_CAP)
    await Run(stores, model, seed=7, gifts=gifts).play(400)
    for user in VIEWERS + CREATORS:
        balances = await stores.wallets.balances(user)
        assert (balances.coins, balances.diamonds, balances.diamonds_held, balances.locked is not None) == (
            model.coins[user], model.diamonds[user], model.diamonds_held[user], user in model.locked)
    for user in VIEWERS + CREATORS:
        ledger = [LedgerEntry(f[b"kind"].decode(), f[b"unit"].decode(), int(f[b"delta"]), int(f[b"balance"]))
                  for _, f in await stores.redis.xrange(keys.ledger(user))]
        assert ledger == model.ledger.get(user, []), user
    report = await audit(stores.redis)
    assert report.ok, report.problems
    assert model.conserved()
    assert (report.coins_credited, report.coins_adjusted, report.coins_reversed, report.coins_spent) == (
        model.coins_credited, model.coins_adjusted, model.coins_reversed, model.coins_spent)
    assert (report.diamonds_credited, report.diamonds_adjusted, report.diamonds_paid_out) == (
        model.diamonds_credited, model.diamonds_adjusted, model.diamonds_paid_out)
    # the run reached every kind of movement, and a reversal that locked an account
    seen = set()
    for user in VIEWERS + CREATORS:
        for _, fields in await stores.redis.xrange(keys.ledger(user)):
            seen |= {fields[b"kind"].decode(), "locked" * (fields.get(b"locked") == b"1")}
    assert seen >= set(KIND_UNITS) | {"locked"}


async def test_random_economy_matches_the_model_and_passes_the_audit(redis):
    await check_random_economy(random_stores(redis))


async def test_random_economy_on_the_cluster_matches_the_model_and_passes_the_audit(cluster):
    stores = random_stores(cluster)  # gifts take the split path (debit, credit, complete) across nodes
    await check_random_economy(stores, gifts=make_split_gifts(stores))


async def test_audit_catches_a_balance_edited_directly_in_redis(stores):
    await stores.set_coins("bob", 50)
    await stores.redis.hincrby(keys.wallet("bob"), "coins", 1000)
    report = await audit(stores.redis)
    assert not report.ok
    assert any("bob: coins balance 1050" in p for p in report.problems)
    assert any("coins not conserved" in p for p in report.problems)


async def test_audit_catches_minted_diamonds(stores):
    await stores.redis.hset(keys.wallet("alice"), "diamonds", 5)
    report = await audit(stores.redis)
    assert any("diamonds not conserved" in p for p in report.problems)


async def withdrawal(stores) -> str:
    await stores.set_diamonds("alice", 5_000)
    quote = quote_withdrawal(stores.catalog, Principal("alice", "creator"), Profile("alice"), 3_000, "bank", "w",
                             now_ms=0, limits=stores.bank.withdrawal_limits)
    return (await stores.bank.withdrawals.request(quote)).withdrawal_id


async def test_audit_catches_held_diamonds_edited(stores):
    await withdrawal(stores)
    await stores.redis.hincrby(keys.wallet("alice"), "diamonds_held", -3_000)
    problems = (await audit(stores.redis)).problems
    assert any("diamonds_held balance 0" in p for p in problems)
    assert any("open withdrawals hold 3000" in p for p in problems)
    assert any("diamonds not conserved" in p for p in problems)


async def test_audit_catches_a_withdrawal_marked_paid_without_a_payout(stores):
    wid = await withdrawal(stores)
    await stores.redis.hset(keys.withdrawal("alice", wid), "status", "paid")
    assert any("open withdrawals hold 0" in p for p in (await audit(stores.redis)).problems)


async def test_audit_catches_goods_added_without_a_purchase(stores):
    await stores.redis.hincrby(keys.inventory("bob"), "vip_badge", 1)
    assert any("inventory" in p for p in (await audit(stores.redis)).problems)


async def test_audit_catches_an_unlocked_negative_wallet(stores):
    await stores.lock_by_chargeback()
    assert (await audit(stores.redis)).ok
    await stores.redis.hdel(keys.wallet("bob"), "locked")
    assert any("bob: coins -700 but locked is None" in p for p in (await audit(stores.redis)).problems)


async def test_audit_catches_a_locked_account_missing_from_the_admins_index(stores):
    await stores.lock_by_chargeback()
    await stores.redis.zrem(keys.LOCKED_ACCOUNTS, "bob")
    assert "bob: locked but not in the index of locked accounts" in (await audit(stores.redis)).problems


async def test_audit_catches_an_unlocked_account_left_in_the_admins_index(stores):
    await stores.redis.zadd(keys.LOCKED_ACCOUNTS, {"carol": 1})
    assert "carol: in the index of locked accounts but not locked" in (await audit(stores.redis)).problems


async def test_audit_catches_an_entry_of_an_unknown_kind(stores):
    await stores.redis.xadd(keys.ledger("bob"), {"kind": "gift_found", "unit": "coins", "delta": 5, "balance": 5})
    assert any("kind 'gift_found'" in p for p in (await audit(stores.redis)).problems)


async def test_audit_of_an_empty_store_passes(stores):
    assert (await audit(stores.redis)).ok


async def gift_left_in_flight(stores) -> None:
    """bob's 5-coin gift to alice, debited by the cluster path, whose process died before the credit."""
    await stores.lives.set_state("alice", "open")
    await stores.set_coins("bob", 50)

    def crash() -> None:
        raise RuntimeError("crashed after the debit")

    charge = price_gift(stores.catalog, Principal("bob", "viewer"), SendGift(1, "alice", "panda", 1, "k"), rate_bp=10_000)
    with pytest.raises(RuntimeError):
        await make_split_gifts(stores, after_debit=crash).apply_gift(charge)


async def test_a_gift_in_flight_is_counted_not_flagged(stores):
    await gift_left_in_flight(stores)
    report = await audit(stores.redis)
    assert report.ok, report.problems
    assert report.gifts_in_flight == 1


async def test_audit_catches_a_gift_debited_but_never_credited(stores):
    await gift_left_in_flight(stores)
    await stores.redis.delete(keys.outbox("bob"))  # the outbox entry lost: the credit never comes
    report = await audit(stores.redis)
    assert any("5 coins debited but never credited" in p for p in report.problems)


async def test_audit_catches_a_gift_credited_twice(stores):
    await stores.lives.set_state("alice", "open")
    await stores.set_coins("bob", 50)
    await stores.wallets.apply_gift(price_gift(stores.catalog, Principal("bob", "viewer"),
                                               SendGift(1, "alice", "panda", 1, "k"), rate_bp=10_000))
    [(_, received)] = await stores.redis.xrange(keys.ledger("alice"))
    await stores.redis.xadd(keys.ledger("alice"), {**received, b"delta": 0})  # a second receipt, 0 diamonds
    report = await audit(stores.redis)
    assert any("credited 2 times" in p for p in report.problems)


async def test_audit_on_the_cluster_reads_users_on_every_node(cluster, valkey_cluster):
    stores = make_stores(cluster)
    users = [f"user{i}" for i in range(12)]
    assert len({valkey_cluster.owner(keys.wallet(user)) for user in users}) == 3
    for user in users:
        await stores.set_coins(user, 10)
    report = await audit(cluster)
    assert report.ok and (report.users, report.coins_held) == (12, 120)


async def test_model_refuses_like_the_store():
    model = EconomyModel()
    with pytest.raises(RoomClosed):
        model.send_gift("bob", "alice", "k", "fp", 1, 1)
    model.open_room("alice")
    with pytest.raises(InsufficientFunds):
        model.send_gift("bob", "alice", "k", "fp", 1, 1)
