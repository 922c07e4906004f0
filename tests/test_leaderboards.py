"""Leaderboards: ISO weeks, boards written by the gift script, and the public HTTP route."""

import datetime

import pytest

from server import keys
from server.auth import Principal
from server.codec import SendGift
from server.economy import price_gift
from server.errors import InvalidField
from server.leaderboards import WEEKLY_TTL_S, check_period, iso_week
from tests.factories import make_stores

ALICE = "alice"


def unix(*date):
    return datetime.datetime(*date, tzinfo=datetime.UTC).timestamp()


@pytest.mark.parametrize("date,week", [
    ((2021, 1, 3, 23, 59), "2020-W53"),  # a Sunday still in the previous ISO year
    ((2021, 1, 4, 0, 0), "2021-W01"),  # the Monday after starts week 1
    ((2024, 12, 30, 12, 0), "2025-W01"),  # late December can be the next ISO year
    ((2025, 2, 12, 8, 0), "2025-W07"),
])
def test_iso_week_labels_follow_iso_8601_in_utc(date, week):
    assert iso_week(unix(*date)) == week


@pytest.mark.parametrize("value", ["day", "", None, "LIVE"])
def test_an_unknown_period_is_invalid(value):
    with pytest.raises(InvalidField):
        check_period(value)


@pytest.fixture
async def stores(redis):
    stores = make_stores(redis)
    await stores.lives.set_state(ALICE, "open")
    for user in ("bob", "carol"):
        await stores.set_coins(user, 1_000)
    return stores


async def send(stores, sender, gift, key):
    charge = price_gift(stores.catalog, Principal(sender, "viewer"), SendGift(1, ALICE, gift, 1, key), rate_bp=10_000)
    return await stores.wallets.apply_gift(charge)


async def test_a_gift_counts_on_the_live_weekly_and_all_time_boards(stores):
    await send(stores, "bob", "panda", "k1")
    await send(stores, "carol", "love_bang", "k2")
    await send(stores, "bob", "panda", "k3")
    for period in ("live", "week", "all"):
        assert await stores.lives.leaderboard(ALICE, period, 10) == [["carol", 25], ["bob", 10]]


async def test_a_new_live_resets_only_the_live_board(stores):
    await send(stores, "bob", "panda", "k1")
    await stores.lives.set_state(ALICE, "closed")
    await stores.lives.set_state(ALICE, "open")
    await send(stores, "carol", "rose", "k2")
    assert await stores.lives.leaderboard(ALICE, "live", 10) == [["carol", 1]]
    assert await stores.lives.leaderboard(ALICE, "all", 10) == [["bob", 5], ["carol", 1]]


async def test_the_weekly_board_expires_weeks_after_its_last_gift(stores, redis):
    await send(stores, "bob", "rose", "k1")
    (week_key,) = [key async for key in redis.scan_iter(match=keys.top_week(ALICE, "*"))]
    assert 4 * 7 * 86400 < await redis.ttl(week_key) <= WEEKLY_TTL_S
    assert await redis.ttl(keys.top_all(ALICE)) == -1


async def test_a_replayed_gift_does_not_count_twice(stores):
    await send(stores, "bob", "panda", "k1")
    await send(stores, "bob", "panda", "k1")
    assert await stores.lives.leaderboard(ALICE, "all", 10) == [["bob", 5]]


# --- GET /v1/rooms/{creator}/leaderboard ------------------------------------------------------


async def test_the_leaderboard_route_is_public_and_limited(live_server, stores):
    for i, sender in enumerate(["bob", "carol", "carol"]):
        await send(stores, sender, "panda", f"k{i}")
    async with live_server.http() as http:
        response = await http.get(f"/v1/rooms/{ALICE}/leaderboard", params={"period": "week", "limit": 1})
    assert response.status_code == 200
    assert response.json() == {"room": ALICE, "period": "week", "top": [["carol", 10]]}


async def test_the_leaderboard_route_defaults_to_the_current_live(live_server, stores):
    await send(stores, "bob", "rose", "k1")
    async with live_server.http() as http:
        response = await http.get(f"/v1/rooms/{ALICE}/leaderboard")
    assert response.json() == {"room": ALICE, "period": "live", "top": [["bob", 1]]}


@pytest.mark.parametrize("path,params", [
    (f"/v1/rooms/{ALICE}/leaderboard", {"period": "month"}),
    (f"/v1/rooms/{ALICE}/leaderboard", {"limit": "0"}),
    (f"/v1/rooms/{ALICE}/leaderboard", {"limit": "101"}),
    (f"/v1/rooms/{ALICE}/leaderboard", {"limit": "ten"}),
    ("/v1/rooms/not%20an%20id/leaderboard", {}),
])
async def test_bad_leaderboard_parameters_are_invalid_field(live_server, path, params):
    async with live_server.http() as http:
        response = await http.get(path, params=params)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_field")
