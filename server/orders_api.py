"""HTTP routes of recharge orders: create one, read the caller's, pay it at the sandbox
provider's checkout, and the payment provider's webhook (payments.py applies it). A user only
ever sees their own orders (admins: any order); someone else's order is `unknown_order`, not
`forbidden`, so its existence is not confirmed.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.economy import recharge_credit, spender_region
from server.errors import Forbidden, InvalidField, NotFound, OrderState, UnknownOrder
from server.http_request import _json_body, _principal, _services, signed_webhook
from server.order_store import PAYMENT_METHODS, buyer_of
from server.payments import handle_payment_webhook

__all__ = ["create_order", "get_order", "list_orders", "payment_webhook", "sandbox_checkout"]


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


async def payment_webhook(request: Request) -> Response:
    """Payment provider events: credits a paid order exactly once.
    ---
    auth: signature
    body: PaymentEvent
    responses: {200: PaymentResult}
    errors: [bad_signature, stale_timestamp, bad_request, invalid_field, unknown_order, order_state]
    """
    return await signed_webhook(request, handle_payment_webhook, _services(request).orders)
