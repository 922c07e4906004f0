"""HTTP routes for admins (and the sandbox's disputes): profiles, reward grants, balance
adjustments, the locked accounts, rate versions published at run time, refunds and
chargebacks (whole or partial). Every admin route requires the admin role.
Route table: `routes` (app.py adds it to http_api's).

Refunds and chargebacks are the payment provider's events (`payment.refunded`,
`payment.charged_back`, see payments.py); here an admin asks the sandbox provider to refund a
paid order, and a buyer (or an admin) has the sandbox charge one back, as a bank would after a
dispute. Both exist only with `GIFTCAST_SANDBOX_PAYMENTS` (the only provider giftcast has).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth import check_user_id
from server.economy import balance_adjustment, reward_grant, utc_date
from server.errors import InvalidField, NotFound, OrderState
from server.http_request import _int_param, _json_body, _principal, _require_role, _services
from server.locked_accounts import list_locked
from server.orders_api import _own_order
from server.profiles import profile_changes
from server.rates import rate_change

__all__ = ["routes"]


def _admin_target(request: Request) -> str:
    _require_role(_principal(request), "admin")
    return check_user_id(request.path_params["user_id"])


async def get_profile(request: Request) -> Response:
    """Admin: a user's profile.
    ---
    auth: [admin]
    responses: {200: Profile}
    errors: [forbidden, invalid_field]
    """
    services = _services(request)
    profile = await services.bank.profiles.get(_admin_target(request))
    return JSONResponse(profile.to_wire(services.catalog))


async def set_profile(request: Request) -> Response:
    """Admin: set a user's region, birth date or account type (each optional; null clears it).
    ---
    auth: [admin]
    body: ProfileUpdate
    responses: {200: Profile}
    errors: [forbidden, bad_request, invalid_field, unknown_region]
    """
    user_id = _admin_target(request)
    services = _services(request)
    changes = profile_changes(services.catalog, await _json_body(request), utc_date(int(time.time() * 1000)))
    if not changes:
        raise InvalidField("send region, birth_date and/or account_type")
    profile = await services.bank.profiles.update(user_id, changes)
    return JSONResponse(profile.to_wire(services.catalog))


async def grant(request: Request) -> Response:
    """Admin: grant reward coins (`/rewards`: Reward) or adjust a balance (`/adjustments`: Adjustment).
    Recorded in the ledger with the admin and the reason; once per idempotency `key`.
    ---
    auth: [admin]
    body: Adjustment
    responses: {201: Grant, 200: Grant}
    errors: [forbidden, bad_request, invalid_field, insufficient_funds, idempotency_conflict]
    """
    admin = _principal(request)
    user_id = _admin_target(request)
    data = await _json_body(request)
    if request.url.path.endswith("/rewards"):
        change = reward_grant(admin, user_id, data.get("coins"), data.get("reason"), data.get("key"))
    else:
        change = balance_adjustment(admin, user_id, data.get("unit"), data.get("delta"), data.get("reason"),
                                    data.get("key"))
    balance, replay = await _services(request).bank.accounts.grant(change)
    return JSONResponse({"user_id": user_id, "kind": change.kind, "unit": change.unit, "delta": change.delta,
                         "balance": balance, "replay": replay}, status_code=200 if replay else 201)


async def _reverse(request: Request, kind: str) -> Response:
    services = _services(request)
    if not services.settings.sandbox_payments:
        raise NotFound("the sandbox payment provider is disabled")
    order = await _own_order(request)
    if order["status"] != "paid":
        raise OrderState(f"order is {order['status']}")
    data = await _json_body(request)
    deliveries = data.get("deliveries", 1)
    if type(deliveries) is not int or not 1 <= deliveries <= 5:
        raise InvalidField("deliveries is 1 to 5")
    left = order["price"] - order.get("reversed_amount", 0)
    amount = data.get("amount", left)
    if type(amount) is not int or not 1 <= amount <= left:
        raise InvalidField(f"amount is 1 to {left} (what is left of the payment)")
    reversal_id = services.sandbox.reverse(order, kind=kind, amount=amount, deliveries=deliveries)
    return JSONResponse({"reversal_id": reversal_id, "order_id": order["id"], "kind": kind, "amount": amount},
                        status_code=202)


async def refund(request: Request) -> Response:
    """Admin, sandbox: refund a paid order; the provider's signed webhook takes its coins back.
    ---
    auth: [admin]
    body: Reversal
    responses: {202: ReversalStarted}
    errors: [forbidden, bad_request, invalid_field, not_found, unknown_order, order_state]
    """
    _require_role(_principal(request), "admin")
    return await _reverse(request, "refund")


async def chargeback(request: Request) -> Response:
    """Sandbox: the buyer (or an admin) disputes a paid order and the merchant loses it.
    ---
    auth: [viewer, creator, admin]
    body: Reversal
    responses: {202: ReversalStarted}
    errors: [forbidden, bad_request, invalid_field, not_found, unknown_order, order_state]
    """
    return await _reverse(request, "chargeback")


async def locked(request: Request) -> Response:
    """Admin: accounts locked by a reversed payment, longest locked first, with their debt and why.
    ---
    auth: [admin]
    query: {limit: integer}
    responses: {200: LockedAccounts}
    errors: [forbidden, invalid_field]
    """
    _require_role(_principal(request), "admin")
    limit = _int_param(request, "limit", 100, 1, 1000)
    services = _services(request)
    return JSONResponse({"accounts": await list_locked(services.redis, limit=limit)})


async def list_rates(request: Request) -> Response:
    """Admin: every rate version of every region (the catalog's and those published at run time;
    past, in force or scheduled), oldest first.
    ---
    auth: [admin]
    responses: {200: RateList}
    errors: [forbidden]
    """
    _require_role(_principal(request), "admin")
    table = await _services(request).bank.rates.table()
    return JSONResponse({"rates": {region: [rate.to_wire() for rate in history]
                                   for region, history in table.versions.items()}})


async def publish_rate(request: Request) -> Response:
    """Admin: publish a region's next rate version, in force from `from` (ms; default and earliest:
    GIFTCAST_RATE_REFRESH_S + 1 s from now, so every process has read it by then).
    ---
    auth: [admin]
    body: RateChange
    responses: {201: Rate}
    errors: [forbidden, bad_request, invalid_field]
    """
    admin = _principal(request)
    _require_role(admin, "admin")
    book = _services(request).bank.rates
    rate = await book.publish(rate_change(await book.table(), await _json_body(request)), admin=admin.user_id)
    return JSONResponse(rate.to_wire(), status_code=201)


routes = [
    Route("/v1/admin/users/{user_id}/profile", get_profile),
    Route("/v1/admin/users/{user_id}/profile", set_profile, methods=["PUT"]),
    Route("/v1/admin/users/{user_id}/rewards", grant, methods=["POST"]),
    Route("/v1/admin/users/{user_id}/adjustments", grant, methods=["POST"]),
    Route("/v1/admin/locked-accounts", locked),
    Route("/v1/admin/rates", list_rates),
    Route("/v1/admin/rates", publish_rate, methods=["POST"]),
    Route("/v1/admin/orders/{order_id}/refund", refund, methods=["POST"]),
    Route("/sandbox/chargeback/{order_id}", chargeback, methods=["POST"]),
]
