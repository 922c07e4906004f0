"""The catalog file: realistic defaults, validated on load, regions and lookups."""

from pathlib import Path

import pytest

from server.catalog import load_catalog
from server.errors import ConfigError, UnknownBundle, UnknownGift, UnknownItem, UnknownRegion


def test_bundled_catalog_has_reference_gifts_and_bundles():
    catalog = load_catalog()
    assert catalog.gift("rose").coins == 1
    assert catalog.gift("universe").coins == 44_999
    assert catalog.bundle("coins_70").prices["US"] == 99


def test_bigger_bundles_carry_a_larger_bonus_share():
    bundles = sorted(load_catalog().bundles.values(), key=lambda b: b.coins)
    shares = [b.bonus_coins / b.coins for b in bundles]
    assert shares == sorted(shares) and shares[-1] > 0


def test_bundles_for_region_are_priced_in_its_currency():
    rows = load_catalog().bundles_for("GB")
    assert {row["currency"] for row in rows} == {"GBP"}
    assert rows[0]["price"] == 89


def test_no_region_falls_back_to_default():
    assert load_catalog().bundles_for(None)[0]["currency"] == "USD"


def test_unknown_lookups_raise_typed_errors():
    catalog = load_catalog()
    with pytest.raises(UnknownGift):
        catalog.gift("nope")
    with pytest.raises(UnknownBundle):
        catalog.bundle(None)
    with pytest.raises(UnknownRegion):
        catalog.region("XX")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


BASE = """
default_region = "US"
[regions.US]
currency = "USD"
[[rates]]
region = "US"
version = 1
rate_bp = 10000
cash_per_1000_diamonds = 500
[[bundles]]
id = "b1"
coins = 10
prices = { US = 100 }
"""


@pytest.mark.parametrize("gift", [
    'id = "g"\nname = "G"\ncoins = 0\ntier = 1',
    'id = "g"\nname = "G"\ncoins = -5\ntier = 1',
    'id = "g"\nname = "G"\ncoins = 1.5\ntier = 1',
    'id = "G G"\nname = "G"\ncoins = 1\ntier = 1',
    'id = "g"\nname = "G"\ncoins = 10000000000000\ntier = 1',
])
def test_bad_gift_rows_stop_the_load(tmp_path, gift):
    with pytest.raises(ConfigError):
        load_catalog(write(tmp_path, BASE + "[[gifts]]\n" + gift))


def test_duplicate_ids_stop_the_load(tmp_path):
    gift = '[[gifts]]\nid = "g"\nname = "G"\ncoins = 1\ntier = 1\n'
    with pytest.raises(ConfigError, match="duplicate"):
        load_catalog(write(tmp_path, BASE + gift + gift))


def test_not_toml_stops_the_load(tmp_path):
    with pytest.raises(ConfigError):
        load_catalog(write(tmp_path, "[[[ nope"))


GIFT = '[[gifts]]\nid = "g"\nname = "G"\ncoins = 1\ntier = 1\n'


def test_a_minimal_catalog_loads(tmp_path):
    catalog = load_catalog(write(tmp_path, BASE + GIFT))
    assert catalog.gift("g").coins == 1 and catalog.regions["US"].min_age == 18


@pytest.mark.parametrize("extra,problem", [
    ('[[goods]]\nid = "x"\nname = "X"\nkind = "car"\ncoins = 5\n', "kind"),
    ('[[goods]]\nid = "x"\nname = "X"\nkind = "effect"\ncoins = 0\n', "coins"),
    ('[[goods]]\nid = "x"\nname = "X"\nkind = "effect"\ncoins = 5\nregions = ["ZZ"]\n', "unknown regions"),
    ('[[goods]]\nid = "x"\nname = "X"\nkind = "effect"\ncoins = 5\navailable_from = 2026-01-01\n', "offset"),
    ('[[goods]]\nid = "x"\nname = "X"\nkind = "badge"\ncoins = 5\n'
     'available_from = 2026-01-02T00:00:00Z\navailable_until = 2026-01-01T00:00:00Z\n', "after"),
])
def test_bad_goods_rows_stop_the_load(tmp_path, extra, problem):
    with pytest.raises(ConfigError, match=problem):
        load_catalog(write(tmp_path, BASE + GIFT + extra))


def test_a_region_without_a_rate_stops_the_load(tmp_path):
    with pytest.raises(ConfigError, match="GB has no rate"):
        load_catalog(write(tmp_path, BASE + GIFT + '[regions.GB]\ncurrency = "GBP"\n'))


def test_bundled_catalog_has_goods_rates_and_regional_ages():
    catalog = load_catalog()
    assert {g.kind for g in catalog.goods.values()} == {"effect", "filter", "badge"}
    assert catalog.regions["KR"].min_age == 19 and catalog.regions["US"].min_age == 18
    assert catalog.rates.current("US", 0).cash_for(200_000) == 100_000  # 1,000 USD


def test_gift_list_shows_only_what_the_region_may_send_now():
    catalog = load_catalog()
    us_now = {g["id"] for g in catalog.gift_list("US", 1_780_000_000_000)}
    kr_now = {g["id"] for g in catalog.gift_list("KR", 1_780_000_000_000)}
    new_year = {g["id"] for g in catalog.gift_list("US", 1_798_761_600_000)}  # 2027-01-01
    assert "lantern" in kr_now - us_now
    assert "fireworks_2027" in new_year - us_now


def test_goods_list_follows_region_and_window():
    catalog = load_catalog()
    assert "hanbok_frame" not in {g["id"] for g in catalog.goods_list("US", 0)}
    assert "hanbok_frame" in {g["id"] for g in catalog.goods_list("KR", 0)}
    assert "new_year_badge_2027" in {g["id"] for g in catalog.goods_list("GB", 1_798_761_600_000)}


def test_unknown_good_is_a_typed_error():
    with pytest.raises(UnknownItem):
        load_catalog().good("gold_bar")


def test_home_region_falls_back_to_the_default():
    catalog = load_catalog()
    assert catalog.home_region(None).code == "US" and catalog.home_region("ZZ").code == "US"
    assert catalog.home_region("KR").code == "KR"
