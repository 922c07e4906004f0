"""Campaigns: time-boxed, regional, the most generous of each kind, chosen at order time."""

import pytest

from server.errors import ConfigError
from server.promotions import OrderPromotion, promotions_for
from tests.factories import campaign_toml, catalog_with

START, END = 1_789_948_800_000, 1_790_553_600_000  # 2026-09-21 to 2026-09-28 UTC
CAMPAIGNS = (campaign_toml("autumn", "recharge_bonus", START, END, percent=10)
             + campaign_toml("autumn_kr", "recharge_bonus", START, END, percent=20, regions=("KR",))
             + campaign_toml("hello", "first_recharge", START, END, coins=100, percent=5))
CATALOG = catalog_with(CAMPAIGNS)
IN_WEEK = 1_790_100_000_000  # 2026-09-22


def offers(region, now_ms, coins=700):
    return promotions_for(CATALOG.campaigns.values(), coins, region, now_ms)


def test_running_campaigns_apply_to_an_order():
    assert offers("US", IN_WEEK) == OrderPromotion("autumn", 70, "hello", 135)


def test_the_most_generous_campaign_of_a_kind_wins():
    assert offers("KR", IN_WEEK).campaign == "autumn_kr" and offers("KR", IN_WEEK).bonus == 140


def test_nothing_applies_outside_the_window():
    before, after = offers("US", 1_789_000_000_000), offers("US", 1_791_000_000_000)
    assert before == after == OrderPromotion()


@pytest.mark.parametrize("replace,problem", [
    (("kind = \"recharge_bonus\"", "kind = \"cashback\""), "kind"),
    (("percent = 10", "percent = 101"), "percent"),
    (("percent = 10", ""), "gives nothing"),
    (("available_until = 2026-09-28T00:00:00Z", ""), "needs available_from and available_until"),
])
def test_bad_campaigns_stop_the_load(replace, problem):
    autumn = campaign_toml("autumn", "recharge_bonus", START, END, percent=10)
    assert replace[0] in autumn
    with pytest.raises(ConfigError, match=problem):
        catalog_with(autumn.replace(*replace))
