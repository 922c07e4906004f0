"""Promotions: time-boxed recharge campaigns, decided when an order is created. Pure.

Two kinds (catalog file, ``[[campaigns]]``), each with a window (``available_from`` and
``available_until``, both required) and optionally a set of regions:

- ``recharge_bonus``: every recharge in the window earns ``percent`` of the bundle's coins
  plus a fixed ``coins``;
- ``first_recharge``: the same, but only on the buyer's first paid recharge ever.

An order records its promotions when it is created (the buyer saw the offer then; a payment
that lands after the campaign ended still honours it): at most one campaign of each kind, the
one paying most. The order's credit script pays the ``recharge_bonus`` part with the order,
exactly once like the order itself, and decides the ``first_recharge`` part atomically with the
crediting (two orders racing to be "first" cannot both get it). Bonus coins are separate ledger
entries (``kind`` ``bonus``, ``reason`` ``campaign:<id>`` / ``first_recharge:<id>``).
Admin reward grants are not campaigns: see `economy.reward_grant`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from server.availability import Availability, parse_availability

__all__ = ["Campaign", "OrderPromotion", "promotions_for", "parse_campaigns", "CAMPAIGN_KINDS"]

CAMPAIGN_KINDS = ("recharge_bonus", "first_recharge")


@dataclasses.dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    kind: str
    percent: int
    coins: int
    availability: Availability

    def bonus_for(self, bundle_coins: int) -> int:
        return bundle_coins * self.percent // 100 + self.coins


@dataclasses.dataclass(frozen=True, slots=True)
class OrderPromotion:
    """What an order records: campaign ids ("" for none) and the bonus coins each pays."""

    campaign: str = ""
    bonus: int = 0
    first_campaign: str = ""
    first_bonus: int = 0


def _best(campaigns: Collection[Campaign], kind: str, bundle_coins: int, region: str, now_ms: int) -> tuple[str, int]:
    # The most generous offer; on a tie the smaller id, so the choice never depends on file order.
    offers = sorted((-c.bonus_for(bundle_coins), c.id) for c in campaigns
                    if c.kind == kind and c.availability.allows(region, now_ms))
    if not offers or offers[0][0] == 0:
        return "", 0
    return offers[0][1], -offers[0][0]


def promotions_for(campaigns: Collection[Campaign], bundle_coins: int, region: str, now_ms: int) -> OrderPromotion:
    campaign, bonus = _best(campaigns, "recharge_bonus", bundle_coins, region, now_ms)
    first_campaign, first_bonus = _best(campaigns, "first_recharge", bundle_coins, region, now_ms)
    return OrderPromotion(campaign, bonus, first_campaign, first_bonus)


def parse_campaigns(rows: list[dict[str, Any]], known_regions: Collection[str], id_check: Any) -> Mapping[str, Campaign]:
    campaigns: dict[str, Campaign] = {}
    for row in rows:
        cid = id_check(row["id"], campaigns, "campaign")
        if row["kind"] not in CAMPAIGN_KINDS:
            raise ValueError(f"campaign {cid} kind must be one of {', '.join(CAMPAIGN_KINDS)}")
        if "available_from" not in row or "available_until" not in row:
            raise ValueError(f"campaign {cid} needs available_from and available_until")
        percent, coins = row.get("percent", 0), row.get("coins", 0)
        if type(percent) is not int or type(coins) is not int or not 0 <= percent <= 100 or not 0 <= coins <= 10**6:
            raise ValueError(f"campaign {cid} percent must be 0-100 and coins 0-1000000")
        if percent == coins == 0:
            raise ValueError(f"campaign {cid} gives nothing")
        campaigns[cid] = Campaign(cid, row["kind"], percent, coins, parse_availability(row, f"campaign {cid}", known_regions))
    return campaigns
