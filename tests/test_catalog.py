"""The catalog file: realistic defaults, validated on load, regions and lookups."""

from pathlib import Path

import pytest

from server.catalog import load_catalog
from server.errors import ConfigError, UnknownBundle, UnknownGift, UnknownRegion


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
