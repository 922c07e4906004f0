"""HTTP routes of the economy around gifts: regional catalogs, profiles, spending limits,
virtual goods and statements. Route table: `routes` (app.py adds it to http_api's).

Catalog answers are for one region: the caller's profile region when the request carries a
token, else ``?region=`` (default: the catalog's default region). They list only what that
region may buy now, at its price.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.account_store import PERIODS
from server.auth import Principal, bearer_token, check_user_id
from server.catalog import MAX_COINS, Region
from server.economy import price_goods
from server.errors import Forbidden, InvalidField
from server.http_request import _int_param, _json_body, _principal, _require_role, _services
from server.statement import MAX_ENTRIES, read_statement, statement_csv

__all__ = ["routes"]


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _catalog_region(request: Request) -> Region:
    services = _services(request)
    token = bearer_token(request.headers.get("authorization"), request.query_params.get("token"))
    if token:
        profile = await services.bank.profiles.get(services.authenticate(token).user_id)
        return services.catalog.home_region(profile.region)
    return services.catalog.region(request.query_params.get("region"))


async def bundles(request: Request) -> Response:
    """Coin bundles for the caller's region (else `?region=`), with the campaigns running there.
    ---
    query: {region: string}
    responses: {200: BundleList}
    errors: [unknown_region]
    """
    catalog, region, now_ms = _services(request).catalog, await _catalog_region(request), _now_ms()
    campaigns = [{"id": c.id, "kind": c.kind, "percent": c.percent, "coins": c.coins,
                  "available_until": c.availability.until_ms}
                 for c in catalog.campaigns.values() if c.availability.allows(region.code, now_ms)]
    return JSONResponse({"region": region.code, "bundles": catalog.bundles_for(region.code), "campaigns": campaigns})


async def gifts(request: Request) -> Response:
    """The gifts the caller's region (else `?region=`) can send now, cheapest first.
    ---
    query: {region: string}
    responses: {200: GiftList}
    errors: [unknown_region]
    """
    region = await _catalog_region(request)
    return JSONResponse({"region": region.code, "gifts": _services(request).catalog.gift_list(region.code, _now_ms())})


async def goods(request: Request) -> Response:
    """The virtual goods the caller's region (else `?region=`) can buy now.
    ---
    query: {region: string}
    responses: {200: GoodsList}
    errors: [unknown_region]
    """
    region = await _catalog_region(request)
    return JSONResponse({"region": region.code, "goods": _services(request).catalog.goods_list(region.code, _now_ms())})


async def rates(request: Request) -> Response:
    """The coin-to-diamond rate and the diamonds' cash value in force for a region.
    ---
    query: {region: string}
    responses: {200: Rate}
    errors: [unknown_region]
    """
    region = await _catalog_region(request)
    rates = await _services(request).bank.rates.table()
    return JSONResponse(rates.current(region.code, _now_ms()).to_wire())


def _reader(request: Request) -> Principal:
    principal = _principal(request)
    if not principal.can_read_wallet:
        raise Forbidden("an overlay token cannot read accounts")
    return principal


async def my_profile(request: Request) -> Response:
    """The caller's profile (region, birth date, account type) and their region's minimum age.
    ---
    auth: [viewer, creator, admin]
    responses: {200: MyProfile}
    errors: [forbidden]
    """
    services = _services(request)
    profile = await services.bank.profiles.get(_reader(request).user_id)
    region = services.catalog.home_region(profile.region)
    return JSONResponse(profile.to_wire(services.catalog) | {"min_age": region.min_age})


def _spender(request: Request) -> Principal:
    principal = _principal(request)
    if not principal.can_spend:
        raise Forbidden(f"a {principal.role} token has no spending")
    return principal


async def my_limits(request: Request) -> Response:
    """The caller's spending this day and week, against the platform caps and their own limits.
    ---
    auth: [viewer, creator]
    responses: {200: SpendingLimits}
    errors: [forbidden]
    """
    principal = _spender(request)
    return JSONResponse(await _services(request).bank.accounts.spending(principal.user_id, _now_ms()))


async def set_my_limits(request: Request) -> Response:
    """Set the caller's own spending limits (coins per day / week; null removes one).
    Lowering applies at once; raising applies only after the cool-off delay (`pending`).
    ---
    auth: [viewer, creator]
    body: SpendingLimitsUpdate
    responses: {200: SpendingLimits}
    errors: [forbidden, bad_request, invalid_field]
    """
    principal = _spender(request)
    data = await _json_body(request)
    if not data or set(data) - set(PERIODS):
        raise InvalidField("send day and/or week: a limit in coins, or null for none")
    for value in data.values():
        if value is not None and (type(value) is not int or not 1 <= value <= MAX_COINS):
            raise InvalidField("a limit is a positive number of coins, or null")
    accounts = _services(request).bank.accounts
    for period, value in data.items():
        await accounts.set_spend_limit(principal.user_id, period, value)
    return JSONResponse(await accounts.spending(principal.user_id, _now_ms()))


async def buy_goods(request: Request) -> Response:
    """Buy a virtual good with coins; charged once per idempotency `key`.
    ---
    auth: [viewer, creator]
    body: PurchaseRequest
    responses: {201: Purchase, 200: Purchase}
    errors: [forbidden, bad_request, invalid_field, unknown_item, not_available, insufficient_funds, account_locked,
      age_restricted, spending_limit, idempotency_conflict]
    """
    principal = _principal(request)
    services = _services(request)
    data = await _json_body(request)
    purchase = price_goods(services.catalog, principal, await services.bank.profiles.get(principal.user_id),
                           data.get("good_id"), data.get("count", 1), data.get("key"), now_ms=_now_ms(),
                           require_birth_date=services.settings.require_birth_date)
    receipt = await services.bank.goods.buy(purchase)
    return JSONResponse(receipt.to_wire(), status_code=200 if receipt.replay else 201)


async def my_inventory(request: Request) -> Response:
    """The virtual goods the caller owns (good id -> count).
    ---
    auth: [viewer, creator, admin]
    responses: {200: Inventory}
    errors: [forbidden]
    """
    principal = _reader(request)
    return JSONResponse({"user_id": principal.user_id,
                         "items": await _services(request).bank.goods.inventory(principal.user_id)})


async def _statement(request: Request, user_id: str) -> Response:
    fmt = request.query_params.get("format", "json")
    after = request.query_params.get("after")
    if fmt not in ("json", "csv"):
        raise InvalidField("format is json or csv")
    if after is not None and not all(part.isdigit() for part in after.split("-", 1)):
        raise InvalidField("after must be a ledger entry id")
    start = _int_param(request, "from", 0, 0, 2**53)
    end = _int_param(request, "to", 2**53, 0, 2**53)
    limit = _int_param(request, "limit", MAX_ENTRIES, 1, MAX_ENTRIES)
    entries, cursor = await read_statement(_services(request).redis, user_id, start_ms=start, end_ms=end,
                                           after=after, limit=limit)
    if fmt == "json":
        return JSONResponse({"user_id": user_id, "entries": entries, "next": cursor})
    headers = {"content-disposition": f'attachment; filename="statement-{user_id}.csv"'}
    if cursor:
        headers["giftcast-next"] = cursor
    return Response(statement_csv(entries), media_type="text/csv; charset=utf-8", headers=headers)


async def my_statement(request: Request) -> Response:
    """The caller's ledger as a statement, newest first; `?format=csv` for CSV.
    ---
    auth: [viewer, creator, admin]
    query: {format: string, limit: integer, before: string, from_ms: integer, to_ms: integer}
    responses: {200: Statement}
    errors: [forbidden, invalid_field]
    """
    return await _statement(request, _reader(request).user_id)


async def admin_statement(request: Request) -> Response:
    """Admin: a user's statement, as `GET /v1/me/statement`.
    ---
    auth: [admin]
    query: {format: string, limit: integer, before: string, from_ms: integer, to_ms: integer}
    responses: {200: Statement}
    errors: [forbidden, invalid_field]
    """
    _require_role(_principal(request), "admin")
    return await _statement(request, check_user_id(request.path_params["user_id"]))


routes = [
    Route("/v1/catalog/bundles", bundles),
    Route("/v1/catalog/gifts", gifts),
    Route("/v1/catalog/goods", goods),
    Route("/v1/catalog/rates", rates),
    Route("/v1/me/profile", my_profile),
    Route("/v1/me/limits", my_limits),
    Route("/v1/me/limits", set_my_limits, methods=["PUT"]),
    Route("/v1/goods/purchases", buy_goods, methods=["POST"]),
    Route("/v1/me/inventory", my_inventory),
    Route("/v1/me/statement", my_statement),
    Route("/v1/admin/users/{user_id}/statement", admin_statement),
]
