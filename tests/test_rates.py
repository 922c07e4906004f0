"""The versioned rate table: which version applies when, and what a bad table looks like."""

import pytest

from server.errors import ConfigError
from tests.factories import catalog_with, rate_toml

T = 1_800_000_000_000  # 2027-01-15, when US v2 below takes effect

V2 = rate_toml("US", 2, T, 8000, 450)


def test_first_version_applies_until_a_later_one_takes_effect():
    rates = catalog_with(V2).rates
    assert (rates.current("US", T - 1).version, rates.current("US", T).version) == (1, 2)
    assert rates.current("US", T).rate_bp == 8000


def test_a_new_version_in_one_region_leaves_the_others():
    assert catalog_with(V2).rates.current("GB", T + 1).version == 1


def test_cash_value_rounds_down_in_the_region_currency():
    rate = catalog_with(V2).rates.current("US", T)
    assert (rate.cash_for(2_001), rate.currency) == (900, "USD")  # 900.45 cents


@pytest.mark.parametrize("extra,problem", [
    (V2 + V2, "twice"),
    (V2.replace("from = 2027-01-15T08:00:00Z\n", ""), "after v1"),
    (V2.replace("region = \"US\"", "region = \"ZZ\""), "unknown region"),
    (V2.replace("8000", "-1"), "rate_bp"),
    (V2 + rate_toml("US", 3, T - 1, 8000, 450), "after v2"),
])
def test_bad_rate_tables_stop_the_load(extra, problem):
    with pytest.raises(ConfigError, match=problem):
        catalog_with(extra)
