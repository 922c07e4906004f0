"""The economy's pure rules: pricing gifts from the server catalog, diamonds, recharges."""

import datetime

import pytest

from server.auth import Principal
from server.catalog import load_catalog
from server.codec import SendGift
from server.economy import (
    balance_adjustment, diamonds_for, gift_charge, price_gift, price_goods, recharge_credit, reward_grant,
)
from server.errors import (
    AccountRestricted, AgeRestricted, BadRequest, Forbidden, InvalidCount, InvalidIdempotencyKey, NotAvailable,
    SelfGift, UnknownGift, UnknownItem,
)
from server.profiles import Profile
from tests.factories import campaign_toml, catalog_with, rate_toml

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


# --- the rules that need the profiles and the clock -----------------------------------------------

NOW = 1_790_100_000_000  # 2026-09-22
TODAY_18 = datetime.date(2008, 9, 22)
V2 = rate_toml("GB", 2, NOW - 3_600_000, 7000, 400)  # in force from an hour before NOW


BOB, ALICE = Profile("bob"), Profile("alice")


def charge_with(sender=BOB, creator=ALICE, request=None, catalog=CATALOG, now=NOW, require_birth_date=False):
    return gift_charge(catalog, VIEWER, request or gift(), sender_profile=sender, creator_profile=creator,
                       now_ms=now, require_birth_date=require_birth_date)


def test_diamonds_follow_the_rate_version_of_the_creators_region():
    catalog = catalog_with(V2)
    charge = charge_with(creator=Profile("alice", region="GB"), request=gift("panda", 3), catalog=catalog)
    assert (charge.diamonds, charge.rate_bp, charge.rate_version) == (10, 7000, 2)
    before = charge_with(creator=Profile("alice", region="GB"), catalog=catalog, now=NOW - 86_400_000)
    assert before.rate_version == 1


def test_an_18_year_old_may_gift_in_the_us_but_not_in_korea():
    assert charge_with(Profile("bob", "US", TODAY_18)).coins == 1
    with pytest.raises(AgeRestricted):
        charge_with(Profile("bob", "KR", TODAY_18))


def test_a_minor_may_not_gift():
    with pytest.raises(AgeRestricted):
        charge_with(Profile("bob", "US", datetime.date(2009, 1, 1)))


def test_unknown_age_is_refused_only_when_a_birth_date_is_required():
    assert charge_with(Profile("bob")).coins == 1
    with pytest.raises(AgeRestricted):
        charge_with(Profile("bob"), require_birth_date=True)


@pytest.mark.parametrize("sender,creator", [("government", "personal"), ("personal", "political")])
def test_government_and_political_accounts_neither_send_nor_receive(sender, creator):
    with pytest.raises(AccountRestricted):
        charge_with(Profile("bob", account_type=sender), Profile("alice", account_type=creator))


def test_regional_gift_is_not_available_elsewhere():
    with pytest.raises(NotAvailable):
        charge_with(Profile("bob", "US"), request=gift("lantern"))
    assert charge_with(Profile("bob", "KR", datetime.date(2000, 1, 1)), request=gift("lantern")).coins == 99


def test_event_gift_only_in_its_window():
    with pytest.raises(NotAvailable):
        charge_with(request=gift("fireworks_2027"))
    assert charge_with(request=gift("fireworks_2027"), now=1_798_761_600_000).coins == 2027


def test_static_rules_come_first():
    with pytest.raises(SelfGift):
        charge_with(request=gift(room="bob"), sender=Profile("bob", "KR", TODAY_18))


def test_recharge_records_the_campaigns_running_at_order_time():
    catalog = catalog_with(campaign_toml("autumn", "recharge_bonus", NOW - 86_400_000, NOW + 86_400_000, percent=10))
    credit = recharge_credit(catalog, catalog.bundle("coins_700"), "US", now_ms=NOW)
    assert (credit.promotion.campaign, credit.promotion.bonus) == ("autumn", 70)
    assert recharge_credit(catalog, catalog.bundle("coins_700"), "US", now_ms=0).promotion.bonus == 0


def test_recharge_of_a_bundle_not_sold_in_the_region_is_refused():
    catalog = catalog_with('[regions.FR]\ncurrency = "EUR"\n[[rates]]\nregion = "FR"\nversion = 1\n'
                           'rate_bp = 10000\ncash_per_1000_diamonds = 460\n')
    with pytest.raises(NotAvailable):
        recharge_credit(catalog, catalog.bundle("coins_70"), "FR", now_ms=NOW)


def test_goods_are_priced_from_the_catalog():
    purchase = price_goods(CATALOG, VIEWER, Profile("bob"), "vip_badge", 2, "k1", now_ms=NOW,
                           require_birth_date=False)
    assert (purchase.coins, purchase.fingerprint) == (1998, "vip_badge|2")


@pytest.mark.parametrize("good,count,key,error", [
    ("gold_bar", 1, "k", UnknownItem), ("vip_badge", 0, "k", InvalidCount), ("vip_badge", 101, "k", InvalidCount),
    ("vip_badge", True, "k", InvalidCount), ("vip_badge", 1, "bad key", InvalidIdempotencyKey),
    ("hanbok_frame", 1, "k", NotAvailable), ("new_year_badge_2027", 1, "k", NotAvailable),
])
def test_bad_purchases_are_refused(good, count, key, error):
    with pytest.raises(error):
        price_goods(CATALOG, VIEWER, Profile("bob"), good, count, key, now_ms=NOW, require_birth_date=False)


def test_admins_cannot_buy_goods_and_minors_may_not():
    with pytest.raises(Forbidden):
        price_goods(CATALOG, Principal("root", "admin"), Profile("root"), "vip_badge", 1, "k", now_ms=NOW,
                    require_birth_date=False)
    with pytest.raises(AgeRestricted):
        price_goods(CATALOG, VIEWER, Profile("bob", "KR", TODAY_18), "vip_badge", 1, "k", now_ms=NOW,
                    require_birth_date=False)


ADMIN = Principal("root", "admin")


def test_rewards_and_adjustments_are_admin_only_and_validated():
    assert reward_grant(ADMIN, "bob", 50, "stream contest", "r1").delta == 50
    assert balance_adjustment(ADMIN, "bob", "diamonds", -5, "duplicate gift", "a1").unit == "diamonds"
    with pytest.raises(Forbidden):
        reward_grant(VIEWER, "bob", 50, "self-service", "r1")


@pytest.mark.parametrize("call", [
    lambda: reward_grant(ADMIN, "bob", 0, "x", "k"),
    lambda: reward_grant(ADMIN, "bob", 5, "", "k"),
    lambda: reward_grant(ADMIN, "bob", 5, "a\nb", "k"),
    lambda: reward_grant(ADMIN, "bob", 5, "trailing newline\n", "k"),
    lambda: reward_grant(ADMIN, "bob", 5, "x", "k\n"),
    lambda: reward_grant(ADMIN, "bob", 5, "x", None),
    lambda: balance_adjustment(ADMIN, "bob", "gems", 5, "x", "k"),
    lambda: balance_adjustment(ADMIN, "bob", "coins", 0, "x", "k"),
    lambda: balance_adjustment(ADMIN, "bob", "coins", 1.5, "x", "k"),
])
def test_bad_grants_are_refused(call):
    with pytest.raises(BadRequest):
        call()
