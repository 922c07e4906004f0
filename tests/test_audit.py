"""The audit replays the ledgers: it passes on a consistent book and catches tampering."""

import random

import pytest

from server import keys
from server.audit import audit
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift, recharge_credit
from server.errors import InsufficientFunds, RoomClosed
from server.model import EconomyModel
from tests.factories import make_split_gifts, make_stores

CREATORS = ["alice", "ann"]
VIEWERS = ["bob", "carol", "dave"]


@pytest.fixture
def stores(redis):
    return make_stores(redis)


async def run_random_economy(stores, model: EconomyModel, seed: int, steps: int = 150, gifts=None) -> None:
    """Random recharges, gifts and room changes, applied to the real stores and the model alike.
    `gifts` applies the gifts: `stores.wallets` (one node, the default) or a SplitGiftStore."""
    gifts = gifts or stores.wallets
    rng = random.Random(seed)
    for step in range(steps):
        action = rng.random()
        if action < 0.15:
            user = rng.choice(VIEWERS)
            bundle = stores.catalog.bundle(rng.choice(["coins_70", "coins_350"]))
            order = await stores.orders.create(user, bundle, recharge_credit(stores.catalog, bundle, None), "card")
            model.create_order(order["id"], bundle)
            await stores.orders.credit(order["id"], f"p{step}", order["price"], order["currency"], "card")
            model.pay_order(order["id"], f"p{step}")
        elif action < 0.22:
            creator = rng.choice(CREATORS)
            if creator in model.open_rooms:
                await stores.lives.set_state(creator, "closed")
                model.close_room(creator)
            else:
                await stores.lives.set_state(creator, "open")
                model.open_room(creator)
        else:
            sender, creator = rng.choice(VIEWERS), rng.choice(CREATORS)
            gift = rng.choice(["rose", "panda", "love_bang", "rainbow_puke"])
            key = f"k{rng.randrange(40)}"  # keys repeat: some sends are retries or conflicts
            request = SendGift(step, creator, gift, rng.randint(1, 5), key)
            charge = price_gift(stores.catalog, Principal(sender, "viewer"), request, rate_bp=7_000)
            try:
                expected = model.send_gift(sender, creator, key, request.fingerprint, charge.coins, charge.diamonds)
            except Exception as exc:
                with pytest.raises(type(exc)):
                    await gifts.apply_gift(charge)
            else:
                receipt = await gifts.apply_gift(charge)
                assert (receipt.balance, receipt.creator_diamonds) == expected


async def check_random_economy(stores, gifts=None) -> None:
    model = EconomyModel()
    await run_random_economy(stores, model, seed=7, gifts=gifts)
    for user in VIEWERS + CREATORS:
        balances = await stores.wallets.balances(user)
        assert (balances.coins, balances.diamonds) == (model.coins.get(user, 0), model.diamonds.get(user, 0))
    report = await audit(stores.redis)
    assert report.ok, report.problems
    assert model.conserved()
    assert (report.coins_credited, report.coins_spent, report.diamonds_credited) == (
        model.coins_credited, model.coins_spent, model.diamonds_credited)
    assert report.coins_spent > 0


async def test_random_economy_matches_the_model_and_passes_the_audit(stores):
    await check_random_economy(stores)


async def test_random_economy_on_the_cluster_matches_the_model_and_passes_the_audit(cluster):
    stores = make_stores(cluster)  # gifts take the split path (debit, credit, complete) across nodes
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
