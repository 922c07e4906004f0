"""The economy's pure rules: pricing gifts from the server catalog, diamonds, recharges."""

import pytest

from server.auth import Principal
from server.catalog import load_catalog
from server.codec import SendGift
from server.economy import diamonds_for, price_gift, recharge_credit
from server.errors import Forbidden, InvalidCount, SelfGift, UnknownGift

CATALOG = load_catalog()
VIEWER = Principal("bob", "viewer")


def gift(gift_id="rose", count=1, room="alice"):
    return SendGift(1, room, gift_id, count, "k")


def test_price_comes_from_the_catalog_times_count():
    charge = price_gift(CATALOG, VIEWER, gift("panda", 3), rate_bp=10_000)
    assert (charge.coins, charge.diamonds) == (15, 15)


def test_diamonds_follow_the_rate_and_round_down():
    assert diamonds_for(15, 5_000) == 7
    assert price_gift(CATALOG, VIEWER, gift("panda", 3), rate_bp=5_000).diamonds == 7


def test_unknown_gift_is_refused():
    with pytest.raises(UnknownGift):
        price_gift(CATALOG, VIEWER, gift("gold_bar"), rate_bp=10_000)


def test_creator_cannot_gift_own_room():
    with pytest.raises(SelfGift):
        price_gift(CATALOG, Principal("alice", "creator"), gift(room="alice"), rate_bp=10_000)


@pytest.mark.parametrize("role", ["overlay", "admin"])
def test_overlay_and_admin_tokens_cannot_gift(role):
    with pytest.raises(Forbidden):
        price_gift(CATALOG, Principal("bob", role), gift(), rate_bp=10_000)


def test_total_beyond_the_amount_ceiling_is_refused():
    with pytest.raises(InvalidCount):
        price_gift(CATALOG, VIEWER, gift("universe", 10**9), rate_bp=10_000)


def test_recharge_credits_coins_and_bonus_at_the_region_price():
    credit = recharge_credit(CATALOG, CATALOG.bundle("coins_700"), "GB", now_ms=0)
    assert (credit.coins, credit.bonus_coins, credit.price, credit.currency) == (700, 7, 899, "GBP")
