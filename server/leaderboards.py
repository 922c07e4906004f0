"""Top gifters, by coins: of the current live, of the creator's ISO week, and of all time. Pure.

`send_gift.lua` updates all three in the same atomic step as the gift, so a leaderboard never
disagrees with the ledger:

    live   live:{u:C}:top             reset when a live opens (the snapshot's `top`)
    week   top:{u:C}:week:YYYY-Www    the ISO week (UTC) of the gift; expires WEEKLY_TTL_S after
                                      its last gift, so old weeks vanish by themselves
    all    top:{u:C}:all              never reset

The week is decided by the process's clock when the gift is sent (the key must be named before
the script runs), so a gift within clock skew of midnight between Sunday and Monday may count
for either week. `LiveStore.leaderboard` reads them (`GET /v1/rooms/{creator}/leaderboard`).
"""

from __future__ import annotations

import datetime
from typing import Literal, cast

from server import keys
from server.errors import InvalidField

__all__ = ["Period", "PERIODS", "WEEKLY_TTL_S", "iso_week", "check_period", "board_key"]

Period = Literal["live", "week", "all"]
PERIODS: tuple[Period, ...] = ("live", "week", "all")
WEEKLY_TTL_S = 5 * 7 * 24 * 3600  # a week's board outlives its week by about a month


def iso_week(ts_s: float) -> str:
    """The ISO week label of a Unix time, UTC: "2025-W07" (the ISO year may differ from the date's)."""
    year, week, _ = datetime.datetime.fromtimestamp(ts_s, datetime.UTC).isocalendar()
    return f"{year}-W{week:02d}"


def check_period(value: object) -> Period:
    if value not in PERIODS:
        raise InvalidField("period must be one of " + ", ".join(PERIODS))
    return cast(Period, value)


def board_key(creator: str, period: Period, now_s: float) -> str:
    if period == "live":
        return keys.live_top(creator)
    if period == "week":
        return keys.top_week(creator, iso_week(now_s))
    return keys.top_all(creator)
