"""HTTP routes for integrators' webhooks (server/hooks.py): a creator registers, lists, deletes."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.hooks import HookStore
from server.http_request import _json_body, _principal, _require_role

__all__ = ["routes"]


def _creator(request: Request) -> str:
    principal = _principal(request)
    _require_role(principal, "creator")
    return principal.user_id


def _store(request: Request) -> HookStore:
    return request.state.hooks


async def register_hook(request: Request) -> Response:
    """Register a webhook: every event of the caller's room after now is POSTed to `url`, signed.
    ---
    auth: [creator]
    body: WebhookRequest
    responses: {201: Webhook}
    errors: [invalid_field, bad_request, too_many_webhooks, forbidden]
    """
    creator = _creator(request)
    data = await _json_body(request)
    hook = await _store(request).register(creator, data.get("url"), data.get("events"), now_ms=int(time.time() * 1000))
    return JSONResponse(hook, status_code=201)


async def list_hooks(request: Request) -> Response:
    """The caller's webhooks and how far each has been delivered (secrets are not shown again).
    ---
    auth: [creator]
    responses: {200: WebhookList}
    errors: [forbidden]
    """
    return JSONResponse({"webhooks": await _store(request).list(_creator(request))})


async def delete_hook(request: Request) -> Response:
    """Delete one of the caller's webhooks; undelivered events are not sent.
    ---
    auth: [creator]
    responses: {200: WebhookDeleted}
    errors: [unknown_webhook, forbidden]
    """
    hook_id = request.path_params["hook_id"]
    await _store(request).delete(_creator(request), hook_id)
    return JSONResponse({"deleted": hook_id})


routes = [
    Route("/v1/integrations/webhooks", register_hook, methods=["POST"]),
    Route("/v1/integrations/webhooks", list_hooks, methods=["GET"]),
    Route("/v1/integrations/webhooks/{hook_id}", delete_hook, methods=["DELETE"]),
]
