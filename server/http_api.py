"""HTTP API (Starlette): wallets, orders, live rooms, ledger, webhooks, health.

The creator economy's routes (catalogs, profiles, goods, limits, statements, withdrawals,
admin grants and refunds) are in `economy_api.py`, `payouts_api.py` and `admin_api.py`.

Public: health, the catalogs, a room's public state and leaderboards (what its overlay shows
anyway), the payment webhook (authenticated by its signature) and, in development only,
/dev/tokens. Every other route needs a bearer token, and a user only ever sees their own wallet,
orders and ledger (admins may read anyone's wallet). Errors are the error tree's leaves, rendered
as ``{"error": {"code", "message"}}`` with the leaf's status.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisClusterException, RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth import Principal, Role, bearer_token, check_user_id, mint_token
from server.economy import recharge_credit, spender_region, utc_date
from server.metrics import CONTENT_TYPE
from server.errors import (
    BadRequest, Forbidden, GiftcastError, InvalidField, NotFound, OrderState, Unavailable, UnknownOrder,
)
from server.leaderboards import check_period
from server.live_store import TOP_GIFTERS
from server.order_store import PAYMENT_METHODS, buyer_of
from server.payments import WEBHOOK_PATH, handle_payment_webhook
from server.profiles import profile_changes
from server.services import Services

__all__ = ["routes", "exception_handlers"]

MAX_BODY = 64 * 1024
MAX_LEADERBOARD = 100


def _services(request: Request) -> Services:
    return request.state.services


def _principal(request: Request) -> Principal:
    token = bearer_token(request.headers.get("authorization"), request.query_params.get("token"))
    return _services(request).authenticate(token)


def _require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise Forbidden(f"a {principal.role} token cannot do this")


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequest("request body too large")
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays or objects
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidField(f"{name} must be an integer from {low} to {high}")
    return int(raw)


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


async def create_order(request: Request) -> Response:
    """Create a recharge order for a bundle; pay it at `checkout_url` (sandbox) or with the provider.
    ---
    auth: [viewer, creator]
    body: OrderRequest
    responses: {201: Order}
    errors: [unknown_bundle, unknown_region, invalid_field, bad_request, forbidden]
    """
    principal = _principal(request)
    if not principal.can_spend:
        raise Forbidden(f"a {principal.role} token cannot buy coins")
    services = _services(request)
    data = await _json_body(request)
    bundle = services.catalog.bundle(data.get("bundle_id"))
    method = data.get("method", "card")
    if method not in PAYMENT_METHODS:
        raise InvalidField(f"method must be one of {', '.join(PAYMENT_METHODS)}")
    region = data.get("region")
    if region is not None and not isinstance(region, str):
        raise InvalidField("region must be a region code")
    # The price and campaigns are those of the buyer's profile region, once their age allows buying.
    now_ms = int(time.time() * 1000)
    home = spender_region(services.catalog, await services.bank.profiles.get(principal.user_id), now_ms,
                          require_birth_date=services.settings.require_birth_date)
    if region is not None and region != home.code:
        raise InvalidField(f"orders are priced in your profile's region, {home.code}")
    credit = recharge_credit(services.catalog, bundle, home.code, now_ms=now_ms)
    order = await services.orders.create(principal.user_id, bundle, credit, method)
    order["checkout_url"] = f"/sandbox/checkout/{order['id']}"
    return JSONResponse(order, status_code=201)


async def _own_order(request: Request) -> dict[str, Any]:
    principal = _principal(request)
    order_id = request.path_params["order_id"]
    if not principal.can_read_wallet or (buyer_of(order_id) != principal.user_id and principal.role != "admin"):
        raise UnknownOrder(f"no order {order_id!r}")  # not Forbidden: do not confirm it exists
    return await _services(request).orders.get(order_id)


async def get_order(request: Request) -> Response:
    """One of the caller's orders (admins: any order).
    ---
    auth: [viewer, creator, admin]
    responses: {200: Order}
    errors: [unknown_order]
    """
    return JSONResponse(await _own_order(request))


async def list_orders(request: Request) -> Response:
    """The caller's 50 most recent orders, newest first.
    ---
    auth: [viewer, creator, admin]
    responses: {200: OrderList}
    errors: [forbidden]
    """
    principal = _principal(request)
    if not principal.can_read_wallet:
        raise Forbidden("an overlay token cannot read orders")
    return JSONResponse({"orders": await _services(request).orders.list(principal.user_id)})


async def sandbox_checkout(request: Request) -> Response:
    """The sandbox provider's checkout: pay (or decline) an order; the webhook follows.
    ---
    auth: [viewer, creator, admin]
    body: Checkout
    responses: {202: CheckoutStarted}
    errors: [not_found, unknown_order, order_state, invalid_field, bad_request]
    """
    if not _services(request).settings.sandbox_payments:
        raise NotFound("the sandbox payment provider is disabled")
    order = await _own_order(request)
    if order["status"] not in ("pending", "failed"):
        raise OrderState(f"order is {order['status']}")
    data = await _json_body(request)
    outcome = data.get("outcome", "succeed")
    deliveries = data.get("deliveries", 1)
    if outcome not in ("succeed", "decline") or type(deliveries) is not int or not 1 <= deliveries <= 5:
        raise InvalidField("outcome is succeed or decline; deliveries is 1 to 5")
    payment_id = _services(request).sandbox.charge(
        order, method=data.get("method", order["method"]), succeed=outcome == "succeed", deliveries=deliveries)
    return JSONResponse({"payment_id": payment_id, "order_id": order["id"]}, status_code=202)


async def signed_webhook(request: Request, handle: Callable[..., Awaitable[dict[str, Any]]], store: Any) -> Response:
    """A provider's signed webhook: `handle(store, ...)` verifies and applies the delivery."""
    services = _services(request)
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequest("request body too large")
    result = await handle(
        store, secret=services.settings.webhook_secret, tolerance_s=services.settings.webhook_tolerance_s,
        header=request.headers.get("giftcast-signature"), body=body, now=int(time.time()))
    return JSONResponse(result)


async def payment_webhook(request: Request) -> Response:
    """Payment provider events: credits a paid order exactly once.
    ---
    auth: signature
    body: PaymentEvent
    responses: {200: PaymentResult}
    errors: [bad_signature, stale_timestamp, bad_request, invalid_field, unknown_order, order_state]
    """
    return await signed_webhook(request, handle_payment_webhook, _services(request).orders)


async def set_live(request: Request) -> Response:
    """Open or close the caller's own live room (the path says which); idempotent.
    ---
    auth: [creator]
    responses: {200: LiveState}
    errors: [forbidden]
    """
    principal = _principal(request)
    _require_role(principal, "creator")
    status = "open" if request.url.path.endswith("/open") else "closed"
    state = await _services(request).lives.set_state(principal.user_id, status)
    return JSONResponse({"room": principal.user_id, "status": state.status, "live_id": state.live_id,
                         "seq": state.seq, "changed": state.changed})


async def set_goal(request: Request) -> Response:
    """Set the current live's diamond goal for the overlay's goal bar (0 clears it); publishes `goal`.
    ---
    auth: [creator]
    body: Goal
    responses: {200: GoalState}
    errors: [invalid_field, bad_request, room_closed, forbidden]
    """
    principal = _principal(request)
    _require_role(principal, "creator")
    diamonds = (await _json_body(request)).get("diamonds")
    if type(diamonds) is not int:
        raise InvalidField("diamonds must be an integer from 0 to 10^12")
    seq = await _services(request).lives.set_goal(principal.user_id, diamonds)
    return JSONResponse({"room": principal.user_id, "goal": diamonds, "seq": seq})


async def overlay_token(request: Request) -> Response:
    """Mint a read-only overlay token for the creator's own room, and the overlay's URL.
    ---
    auth: [creator]
    responses: {201: OverlayToken}
    errors: [forbidden]
    """
    principal = _principal(request)
    _require_role(principal, "creator")
    settings = _services(request).settings
    now = int(time.time())
    token = mint_token(settings.token_secret, principal.user_id, "overlay", now=now, ttl_s=settings.overlay_token_ttl_s)
    return JSONResponse({"token": token, "expires_at": now + settings.overlay_token_ttl_s,
                         "overlay_url": f"/overlay/{principal.user_id}?token={token}"}, status_code=201)


async def room(request: Request) -> Response:
    """A room's public snapshot: what a WebSocket join returns.
    ---
    responses: {200: Snapshot}
    errors: [invalid_field]
    """
    creator = check_user_id(request.path_params["creator_id"])
    return JSONResponse(await _services(request).room_snapshot(creator))


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


async def leaderboard(request: Request) -> Response:
    """A room's top gifters by coins: of the current live, the ISO week (UTC) or all time.
    ---
    query: {period: string, limit: integer}
    responses: {200: Leaderboard}
    errors: [invalid_field]
    """
    creator = check_user_id(request.path_params["creator_id"])
    period = check_period(request.query_params.get("period", "live"))
    limit = _int_param(request, "limit", TOP_GIFTERS, 1, MAX_LEADERBOARD)
    top = await _services(request).lives.leaderboard(creator, period, limit)
    return JSONResponse({"room": creator, "period": period, "top": top})


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
