"""Bank: the stores of the creator economy around the gift loop, built together at start-up.

Profiles (region, age, account type), virtual goods, withdrawals, admin grants and spending
limits, and the rate table with the versions published at run time. `Services.bank` holds one; the HTTP modules `economy_api.py` and `payouts_api.py` use it.
"""

from __future__ import annotations

import dataclasses

import redis.asyncio as aioredis

from server.account_store import AccountStore
from server.economy import SpendCaps
from server.goods_store import GoodsStore
from server.catalog import Catalog
from server.profile_store import ProfileStore
from server.rate_store import RateBook
from server.scripts import Scripts
from server.settings import Settings
from server.withdrawal_store import WithdrawalStore
from server.withdrawals import WithdrawalLimits

__all__ = ["Bank", "spend_caps"]


def spend_caps(settings: Settings) -> SpendCaps:
    return SpendCaps(settings.spend_cap_day_coins, settings.spend_cap_week_coins)


def withdrawal_limits(settings: Settings) -> WithdrawalLimits:
    return WithdrawalLimits(settings.withdraw_min_diamonds, settings.withdraw_day_diamonds,
                            settings.withdraw_week_diamonds)


@dataclasses.dataclass(frozen=True, slots=True)
class Bank:
    profiles: ProfileStore
    goods: GoodsStore
    withdrawals: WithdrawalStore
    accounts: AccountStore
    withdrawal_limits: WithdrawalLimits
    rates: RateBook

    @classmethod
    def build(cls, client: aioredis.Redis, scripts: Scripts, settings: Settings, catalog: Catalog) -> Bank:
        caps, limits = spend_caps(settings), withdrawal_limits(settings)
        return cls(
            profiles=ProfileStore(client, cache_s=settings.profile_cache_s),
            goods=GoodsStore(client, scripts, idempotency_ttl_s=settings.idempotency_ttl_s, spend_caps=caps),
            withdrawals=WithdrawalStore(client, scripts, limits=limits),
            accounts=AccountStore(client, scripts, idempotency_ttl_s=settings.idempotency_ttl_s, spend_caps=caps,
                                  raise_delay_s=settings.spend_limit_raise_delay_s),
            withdrawal_limits=limits,
            rates=RateBook(client, scripts, catalog.rates, refresh_s=settings.rate_refresh_s),
        )
