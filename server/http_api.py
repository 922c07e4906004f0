"""HTTP API (Starlette): the core route table, health, metrics, dev tokens, wallets and ledger,
and the error handlers of every route.

The table's order and orders routes are in `orders_api.py`, the live rooms' in `rooms_api.py`;
what every route reads from its request (caller, body, parameters) is in `http_request.py`. The
creator economy's routes (catalogs, profiles, goods, limits, statements, withdrawals, admin
grants and refunds) are in `economy_api.py`, `payouts_api.py` and `admin_api.py`.

Public: health, the catalogs, a room's public state and leaderboards (what its overlay shows
anyway), the payment webhook (authenticated by its signature) and, in development only,
/dev/tokens. Every other route needs a bearer token, and a user only ever sees their own wallet,
orders and ledger (admins may read anyone's wallet). Errors are the error tree's leaves, rendered
as ``{"error": {"code", "message"}}`` with the leaf's status.
"""

from __future__ import annotations

import hmac
import time

from redis.exceptions import RedisClusterException, RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth import bearer_token, check_user_id, mint_token
from server.economy import utc_date
from server.metrics import CONTENT_TYPE
from server.errors import Forbidden, GiftcastError, InvalidField, NotFound, Unavailable
from server.http_request import _int_param, _json_body, _principal, _require_role, _services
from server.orders_api import create_order, get_order, list_orders, payment_webhook, sandbox_checkout
from server.payments import WEBHOOK_PATH
from server.profiles import profile_changes
from server.rooms_api import leaderboard, overlay_token, room, set_goal, set_live

__all__ = ["routes", "exception_handlers"]


async def healthz(request: Request) -> Response:
    """Readiness: 200 when Redis answers PING, 503 otherwise.
    ---
    responses: {200: Health, 503: Health}
    """
    ready = await _services(request).redis_ready()
    return JSONResponse({"status": "ok" if ready else "unavailable"}, status_code=200 if ready else 503)


async def dev_tokens(request: Request) -> Response:
    """Development only (GIFTCAST_DEV_TOKENS=1): mint a token for any user and role.
    ---
    body: TokenRequest
    responses: {201: Token}
    errors: [invalid_field, bad_request, not_found]
    """
    services = _services(request)
    if not services.settings.dev_tokens:
        raise NotFound("dev tokens are disabled")
    data = await _json_body(request)
    now = int(time.time())
    ttl = services.settings.token_ttl_s
    user_id = check_user_id(data.get("user_id"))
    token = mint_token(services.settings.token_secret, user_id, data.get("role", "viewer"), now=now, ttl_s=ttl)
    # Optional profile fields (region, birth_date, account_type), validated before anything is stored.
    profile = {name: data[name] for name in ("region", "birth_date", "account_type") if name in data}
    if changes := profile_changes(services.catalog, profile, utc_date(now * 1000)):
        await services.bank.profiles.update(user_id, changes)
    return JSONResponse({"token": token, "expires_at": now + ttl}, status_code=201)


async def _wallet(request: Request, user_id: str) -> Response:
    balances = await _services(request).wallets.balances(check_user_id(user_id))
    return JSONResponse({"user_id": user_id, **balances.to_wire()})


async def my_wallet(request: Request) -> Response:
    """The caller's own balances.
    ---
    auth: [viewer, creator, admin]
    responses: {200: Wallet}
    errors: [forbidden]
    """
    principal = _principal(request)
    if not principal.can_read_wallet:
        raise Forbidden("an overlay token cannot read the wallet")
    return await _wallet(request, principal.user_id)


async def admin_wallet(request: Request) -> Response:
    """Anyone's balances (admin).
    ---
    auth: [admin]
    responses: {200: Wallet}
    errors: [forbidden, invalid_field]
    """
    _require_role(_principal(request), "admin")
    return await _wallet(request, request.path_params["user_id"])


async def ledger(request: Request) -> Response:
    """The caller's ledger, newest first; page with `before` (an entry id, exclusive).
    ---
    auth: [viewer, creator, admin]
    query: {limit: integer, before: string}
    responses: {200: Ledger}
    errors: [invalid_field, forbidden]
    """
    principal = _principal(request)
    if not principal.can_read_wallet:
        raise Forbidden("an overlay token cannot read the ledger")
    before = request.query_params.get("before")
    if before is not None and not all(part.isdigit() for part in before.split("-", 1)):
        raise InvalidField("before must be a ledger entry id")
    entries = await _services(request).wallets.ledger(
        principal.user_id, limit=_int_param(request, "limit", 50, 1, 500), before=before)
    return JSONResponse({"user_id": principal.user_id, "entries": entries})


async def metrics(request: Request) -> Response:
    """Prometheus text format. A scraper presents GIFTCAST_METRICS_TOKEN; people an admin token.
    ---
    auth: [admin]
    errors: [forbidden]
    """
    services = _services(request)
    presented = bearer_token(request.headers.get("authorization"), None) or ""
    expected = services.settings.metrics_token
    if not (expected and hmac.compare_digest(presented.encode(), expected.encode())):
        _require_role(_principal(request), "admin")
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


async def giftcast_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GiftcastError)
    _services(request).metrics.error(exc.code, "http")
    return JSONResponse({"error": exc.to_wire()}, status_code=exc.status)


async def redis_error(request: Request, exc: Exception) -> Response:
    return await giftcast_error(request, Unavailable("storage unavailable; retry"))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    _services(request).metrics.error(code, "http")
    return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)


routes = [
    Route("/healthz", healthz),
    Route("/metrics", metrics),
    Route("/dev/tokens", dev_tokens, methods=["POST"]),
    Route("/v1/me/wallet", my_wallet),
    Route("/v1/me/ledger", ledger),
    Route("/v1/me/orders", list_orders),
    Route("/v1/orders", create_order, methods=["POST"]),
    Route("/v1/orders/{order_id}", get_order),
    Route("/v1/live/open", set_live, methods=["POST"]),
    Route("/v1/live/close", set_live, methods=["POST"]),
    Route("/v1/live/goal", set_goal, methods=["POST"]),
    Route("/v1/live/overlay-token", overlay_token, methods=["POST"]),
    Route("/v1/rooms/{creator_id}", room),
    Route("/v1/rooms/{creator_id}/leaderboard", leaderboard),
    Route("/v1/admin/users/{user_id}/wallet", admin_wallet),
    Route(WEBHOOK_PATH, payment_webhook, methods=["POST"]),
    Route("/sandbox/checkout/{order_id}", sandbox_checkout, methods=["POST"]),
]

exception_handlers = {GiftcastError: giftcast_error, RedisError: redis_error, RedisClusterException: redis_error,
                      HTTPException: http_error}
