"""Withdrawal rules, pure: who may ask, minimum, method, key, and the cash value at the rate."""

import pytest

from server.auth import Principal
from server.catalog import load_catalog
from server.errors import BelowMinimum, Forbidden, InvalidCount, InvalidField, InvalidIdempotencyKey, UnknownWithdrawal
from server.profiles import Profile
from server.withdrawals import WithdrawalLimits, creator_of, quote_withdrawal, withdrawal_id

CATALOG = load_catalog()
ALICE = Principal("alice", "creator")
LIMITS = WithdrawalLimits(2_000, 200_000, 1_000_000)


def quote(diamonds=10_000, method="paypal", key="w1", principal=ALICE, region=None):
    return quote_withdrawal(CATALOG, principal, Profile(principal.user_id, region), diamonds, method, key,
                            now_ms=0, limits=LIMITS)


def test_cash_value_is_fixed_at_the_rate_of_the_creators_region():
    us, kr = quote(), quote(region="KR")
    assert (us.cash, us.currency, us.rate_version) == (5_000, "USD", 1)  # 50.00 USD
    assert (kr.cash, kr.currency) == (65_000, "KRW")


def test_the_id_names_the_creator_and_follows_the_key():
    assert quote().id == withdrawal_id("alice", "w1") != quote(key="w2").id
    assert creator_of(quote().id) == "alice"


@pytest.mark.parametrize("kwargs,error", [
    ({"diamonds": 1_999}, BelowMinimum), ({"diamonds": 0}, InvalidCount), ({"diamonds": "5000"}, InvalidCount),
    ({"method": "cash"}, InvalidField), ({"key": ""}, InvalidIdempotencyKey),
    ({"principal": Principal("bob", "viewer")}, Forbidden), ({"principal": Principal("root", "admin")}, Forbidden),
])
def test_bad_requests_are_refused(kwargs, error):
    with pytest.raises(error):
        quote(**kwargs)


@pytest.mark.parametrize("bad", ["alice", "alice.short", None, "a b.0123456789abcdef", "alice\n.0123456789abcdef"])
def test_malformed_withdrawal_ids_are_unknown(bad):
    with pytest.raises(UnknownWithdrawal):
        creator_of(bad)
