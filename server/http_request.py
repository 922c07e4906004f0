"""Reading an HTTP request, for every route module: who calls (`_principal`, `_require_role`),
its JSON body (`_json_body`, at most MAX_BODY bytes), its integer query parameters
(`_int_param`), the app's services (`_services`), and a provider's signed webhook
(`signed_webhook`). Each raises the error tree's leaves (BadRequest, InvalidField, Forbidden,
the token's errors), which the app renders as ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server.auth import Principal, Role, bearer_token
from server.errors import BadRequest, Forbidden, InvalidField
from server.services import Services

__all__ = ["MAX_BODY", "_int_param", "_json_body", "_principal", "_require_role", "_services", "signed_webhook"]

MAX_BODY = 64 * 1024


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
