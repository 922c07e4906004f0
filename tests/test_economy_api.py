"""HTTP routes of the economy on a real server: regional catalogs, profiles, orders priced by
the profile's region, limits, goods and statements."""

import csv
import io

import pytest

from tests.factories import make_stores


async def dev_token(server, **body):
    async with server.http() as http:
        response = await http.post("/dev/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()["token"]


async def get(server, token, path, **params):
    async with server.http(token) as http:
        return await http.get(path, params=params)


async def test_dev_token_sets_the_profile(live_server):
    token = await dev_token(live_server, user_id="minji", region="KR", birth_date="2001-03-01")
    profile = (await get(live_server, token, "/v1/me/profile")).json()
    assert profile == {"user_id": "minji", "region": "KR", "birth_date": "2001-03-01", "account_type": "personal",
                       "min_age": 19}


@pytest.mark.parametrize("body", [{"region": "ZZ"}, {"birth_date": "tomorrow"}, {"account_type": "alien"}])
async def test_dev_token_with_a_bad_profile_mints_nothing(live_server, redis, body):
    async with live_server.http() as http:
        response = await http.post("/dev/tokens", json={"user_id": "minji", **body})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_field")
    assert await redis.dbsize() == 0


async def test_catalogs_follow_the_callers_profile_region(live_server):
    token = await dev_token(live_server, user_id="minji", region="KR")
    bundles = (await get(live_server, token, "/v1/catalog/bundles", region="US")).json()
    gifts = {g["id"] for g in (await get(live_server, token, "/v1/catalog/gifts")).json()["gifts"]}
    goods = {g["id"] for g in (await get(live_server, token, "/v1/catalog/goods")).json()["goods"]}
    assert (bundles["region"], bundles["bundles"][0]["currency"]) == ("KR", "KRW")
    assert "lantern" in gifts and "hanbok_frame" in goods


async def test_anonymous_catalogs_take_the_region_parameter(live_server):
    gifts = (await get(live_server, None, "/v1/catalog/gifts", region="GB")).json()
    rate = (await get(live_server, None, "/v1/catalog/rates", region="KR")).json()
    assert gifts["region"] == "GB" and "lantern" not in {g["id"] for g in gifts["gifts"]}
    assert (rate["currency"], rate["version"], rate["cash_per_1000_diamonds"]) == ("KRW", 1, 6500)


async def test_orders_are_priced_in_the_profile_region(live_server):
    token = await dev_token(live_server, user_id="hans", region="DE", birth_date="1990-01-01")
    async with live_server.http(token) as http:
        order = (await http.post("/v1/orders", json={"bundle_id": "coins_70"})).json()
        other = await http.post("/v1/orders", json={"bundle_id": "coins_70", "region": "US"})
    assert (order["price"], order["currency"], order["region"]) == (99, "EUR", "DE")
    assert (other.status_code, other.json()["error"]["code"]) == (400, "invalid_field")


async def test_a_minor_cannot_buy_coins(live_server, redis):
    token = await dev_token(live_server, user_id="kid", region="US", birth_date="2015-05-05")
    async with live_server.http(token) as http:
        response = await http.post("/v1/orders", json={"bundle_id": "coins_70"})
    assert (response.status_code, response.json()["error"]["code"]) == (403, "age_restricted")
    assert await redis.keys("order*") == []


async def test_unknown_age_may_not_buy_when_a_birth_date_is_required(start_server):
    server = await start_server(require_birth_date=True)
    async with server.http(server.token("bob")) as http:
        response = await http.post("/v1/orders", json={"bundle_id": "coins_70"})
    assert response.json()["error"]["code"] == "age_restricted"


async def test_limits_lower_at_once_and_raise_later(live_server):
    token = live_server.token("bob")
    async with live_server.http(token) as http:
        lowered = (await http.put("/v1/me/limits", json={"day": 100})).json()
        raised = (await http.put("/v1/me/limits", json={"day": 500, "week": 1000})).json()
    assert lowered["day"]["self_limit"] == 100
    assert (raised["day"]["self_limit"], raised["day"]["pending"]["self_limit"]) == (100, 500)
    assert (raised["week"]["self_limit"], raised["day"]["platform_cap"]) == (1000, 35_000)


@pytest.mark.parametrize("body", [{}, {"month": 5}, {"day": 0}, {"day": "100"}, {"day": 1.5}])
async def test_bad_limits_change_nothing(live_server, body):
    async with live_server.http(live_server.token("bob")) as http:
        response = await http.put("/v1/me/limits", json=body)
        view = (await http.get("/v1/me/limits")).json()
    assert response.json()["error"]["code"] == "invalid_field"
    assert view["day"]["self_limit"] is None


@pytest.mark.parametrize("role,path", [("overlay", "/v1/me/profile"), ("admin", "/v1/me/limits"),
                                       ("overlay", "/v1/me/statement"), ("overlay", "/v1/me/inventory")])
async def test_accounts_are_not_for_every_token(live_server, role, path):
    assert (await get(live_server, live_server.token("alice", role), path)).status_code == 403


async def test_goods_are_bought_once_per_key(live_server, redis):
    await make_stores(redis).set_coins("bob", 300)
    async with live_server.http(live_server.token("bob")) as http:
        too_dear = await http.post("/v1/goods/purchases", json={"good_id": "vip_badge", "key": "p1"})
        bought = await http.post("/v1/goods/purchases", json={"good_id": "neon_filter", "count": 3, "key": "p3"})
        again = await http.post("/v1/goods/purchases", json={"good_id": "neon_filter", "count": 3, "key": "p3"})
        inventory = (await http.get("/v1/me/inventory")).json()
    assert (too_dear.status_code, too_dear.json()["error"]["code"]) == (409, "insufficient_funds")
    assert (bought.status_code, again.status_code, again.json()["replay"]) == (201, 200, True)
    assert inventory == {"user_id": "bob", "items": {"neon_filter": 3}}


async def test_a_locked_account_cannot_buy_goods(live_server, redis):
    stores = make_stores(redis)
    await stores.lock_by_chargeback("bob")
    async with live_server.http(live_server.token("bob")) as http:
        response = await http.post("/v1/goods/purchases", json={"good_id": "neon_filter", "key": "p1"})
        wallet = (await http.get("/v1/me/wallet")).json()
    assert (response.status_code, response.json()["error"]["code"]) == (403, "account_locked")
    assert wallet["coins"] == -700 and wallet["locked"].startswith("chargeback:")


async def test_statement_downloads_as_json_and_csv(live_server, redis):
    stores = make_stores(redis)
    await stores.paid_order("bob")
    token = live_server.token("bob")
    as_json = (await get(live_server, token, "/v1/me/statement")).json()
    response = await get(live_server, token, "/v1/me/statement", format="csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [e["kind"] for e in as_json["entries"]] == ["recharge", "bonus"] and as_json["next"] is None
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert [(r["kind"], r["delta"], r["balance"]) for r in rows] == [("recharge", "700", "700"), ("bonus", "7", "707")]
    assert "reason=bundle_bonus" in rows[1]["details"] and rows[0]["time"].endswith("+00:00")


async def test_statement_pages_with_a_cursor(live_server, redis):
    stores = make_stores(redis)
    for _ in range(3):
        await stores.paid_order("bob")
    token = live_server.token("bob")
    first = (await get(live_server, token, "/v1/me/statement", limit="4")).json()
    rest = (await get(live_server, token, "/v1/me/statement", after=first["next"])).json()
    assert len(first["entries"]) == 4 and len(rest["entries"]) == 2 and rest["next"] is None


@pytest.mark.parametrize("params", [{"format": "xml"}, {"after": "abc"}, {"limit": "0"}, {"from": "-1"}])
async def test_bad_statement_requests_are_refused(live_server, params):
    response = await get(live_server, live_server.token("bob"), "/v1/me/statement", **params)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_field")


async def test_only_admins_read_someone_elses_statement(live_server, redis):
    await make_stores(redis).set_coins("carol", 5)
    assert (await get(live_server, live_server.token("bob"), "/v1/admin/users/carol/statement")).status_code == 403
    entries = (await get(live_server, live_server.token("root", "admin"), "/v1/admin/users/carol/statement")).json()
    assert [e["delta"] for e in entries["entries"]] == [5]
