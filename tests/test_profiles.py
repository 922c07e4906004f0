"""Profiles, pure: validation of updates, age on a day, region fallback."""

import datetime

import pytest

from server.catalog import load_catalog
from server.errors import InvalidField
from server.profiles import Profile, age_on, profile_changes

CATALOG = load_catalog()
TODAY = datetime.date(2026, 11, 24)


@pytest.mark.parametrize("birth,age", [
    (datetime.date(2008, 11, 24), 18), (datetime.date(2008, 11, 25), 17), (datetime.date(2008, 2, 29), 18),
])
def test_age_counts_completed_years(birth, age):
    assert age_on(birth, TODAY) == age


def test_changes_are_validated_and_null_clears():
    changes = profile_changes(CATALOG, {"region": "KR", "birth_date": None, "account_type": "business"}, TODAY)
    assert changes == {"region": "KR", "birth_date": None, "account_type": "business"}


@pytest.mark.parametrize("data", [
    {"region": "ZZ"}, {"region": 5}, {"birth_date": "2030-01-01"}, {"birth_date": "24/11/2000"},
    {"birth_date": "1899-12-31"}, {"birth_date": 20001124}, {"account_type": "royal"}, {"nickname": "x"},
])
def test_bad_changes_are_invalid_fields(data):
    with pytest.raises(InvalidField):
        profile_changes(CATALOG, data, TODAY)


def test_unknown_stored_region_reads_as_the_default():
    assert Profile("bob", region="XX").to_wire(CATALOG)["region"] == "US"
