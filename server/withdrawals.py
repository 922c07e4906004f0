"""Withdrawals, pure: turning a creator's diamonds into cash, and the rules for asking.

A creator asks to withdraw `diamonds` with a client-chosen idempotency `key`; the withdrawal id
is derived from (creator, key), so a retry names the same withdrawal. Its cash value is fixed
when it is asked for, at the rate version in force in the creator's region then (`rates.py`):
a later rate change never reprices it. Minimum, daily and weekly limits are in diamonds
(settings); the script checks the balance and the day/week totals atomically.

Life of a withdrawal (`withdrawal_store.py`, `payouts.py`):

    pending --approve--> processing --payout.paid--> paid
       |                     |
       +--reject--> failed <-+--payout.failed

Held diamonds leave the creator's balance when the withdrawal is asked for; `paid` pays them
out, `failed` returns them.
"""

from __future__ import annotations

import dataclasses
import hashlib

from server.auth import Principal, owner_of
from server.catalog import MAX_COINS, Catalog
from server.economy import check_key
from server.errors import BelowMinimum, Forbidden, InvalidCount, InvalidField, UnknownWithdrawal
from server.profiles import Profile
from server.rates import RateTable

__all__ = ["PAYOUT_METHODS", "WithdrawalLimits", "WithdrawalQuote", "quote_withdrawal", "withdrawal_id", "creator_of"]

PAYOUT_METHODS = ("paypal", "bank")


@dataclasses.dataclass(frozen=True, slots=True)
class WithdrawalLimits:
    minimum: int
    day: int
    week: int


@dataclasses.dataclass(frozen=True, slots=True)
class WithdrawalQuote:
    """A withdrawal as asked for, priced: everything the hold script records."""

    id: str
    creator: str
    diamonds: int
    cash: int
    currency: str
    region: str
    rate_version: int
    cash_per_1000_diamonds: int
    method: str
    key: str

    @property
    def fingerprint(self) -> str:
        return f"{self.diamonds}|{self.method}"


def withdrawal_id(creator: str, key: str) -> str:
    return f"{creator}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def creator_of(withdrawal: object) -> str:
    """The creator a withdrawal id names; UnknownWithdrawal for anything else."""
    if (creator := owner_of(withdrawal)) is None:
        raise UnknownWithdrawal(f"no withdrawal {str(withdrawal)[:80]!r}")
    return creator


def quote_withdrawal(catalog: Catalog, creator: Principal, profile: Profile, diamonds: object, method: object,
                     key: object, *, now_ms: int, limits: WithdrawalLimits, rates: RateTable | None = None
                     ) -> WithdrawalQuote:
    """A withdrawal priced at the version of `rates` (default: the catalog's) in force now."""
    if creator.role != "creator":
        raise Forbidden("only creators withdraw diamonds")
    if type(diamonds) is not int or not 1 <= diamonds <= MAX_COINS:
        raise InvalidCount("diamonds must be a positive integer")
    if diamonds < limits.minimum:
        raise BelowMinimum(f"the smallest withdrawal is {limits.minimum} diamonds")
    if method not in PAYOUT_METHODS:
        raise InvalidField(f"method must be one of {', '.join(PAYOUT_METHODS)}")
    key = check_key(key)
    rate = (rates or catalog.rates).current(catalog.home_region(profile.region).code, now_ms)
    return WithdrawalQuote(withdrawal_id(creator.user_id, key), creator.user_id, diamonds, rate.cash_for(diamonds),
                           rate.currency, rate.region, rate.version, rate.cash_per_1000_diamonds, str(method), key)
