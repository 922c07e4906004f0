"""HTTP routes of withdrawals: a creator asks, an admin reviews, the provider pays (or not).

See `withdrawals.py` for the rules and the states, `payouts.py` for the payout leg.
Route table: `routes` (app.py adds it to http_api's).
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth import check_user_id
from server.economy import check_reason
from server.errors import Forbidden, InvalidField, UnknownWithdrawal
from server.http_request import _int_param, _json_body, _principal, _require_role, _services, signed_webhook
from server.payments import PAYOUT_WEBHOOK_PATH
from server.payouts import approve, handle_payout_webhook
from server.withdrawals import creator_of, quote_withdrawal

__all__ = ["routes"]


async def request_withdrawal(request: Request) -> Response:
    """Ask to withdraw diamonds as cash: they are held at once and the request is pending review.
    Within the minimum and the daily/weekly limits; once per idempotency `key`.
    ---
    auth: [creator]
    body: WithdrawalRequest
    responses: {201: Withdrawal, 200: Withdrawal}
    errors: [forbidden, bad_request, invalid_field, below_minimum, insufficient_funds, withdrawal_limit,
      account_locked, idempotency_conflict]
    """
    principal = _principal(request)
    services = _services(request)
    data = await _json_body(request)
    bank = services.bank
    quote = quote_withdrawal(services.catalog, principal, await bank.profiles.get(principal.user_id),
                             data.get("diamonds"), data.get("method", "paypal"), data.get("key"),
                             now_ms=int(time.time() * 1000), limits=bank.withdrawal_limits,
                             rates=await bank.rates.table())
    hold = await bank.withdrawals.request(quote)
    withdrawal = await bank.withdrawals.get(hold.withdrawal_id)
    return JSONResponse(withdrawal | {"replay": hold.replay}, status_code=200 if hold.replay else 201)


async def my_withdrawals(request: Request) -> Response:
    """The caller's withdrawals, newest first.
    ---
    auth: [creator]
    responses: {200: WithdrawalList}
    errors: [forbidden]
    """
    principal = _principal(request)
    if principal.role != "creator":
        raise Forbidden("only creators have withdrawals")
    return JSONResponse({"withdrawals": await _services(request).bank.withdrawals.list(principal.user_id)})


async def get_withdrawal(request: Request) -> Response:
    """One withdrawal: its creator's own, or any for an admin.
    ---
    auth: [creator, admin]
    responses: {200: Withdrawal}
    errors: [forbidden, unknown_withdrawal]
    """
    principal = _principal(request)
    withdrawal_id = request.path_params["withdrawal_id"]
    if principal.role != "admin" and (principal.role != "creator" or creator_of(withdrawal_id) != principal.user_id):
        raise UnknownWithdrawal(f"no withdrawal {withdrawal_id!r}")  # not Forbidden: do not confirm it exists
    return JSONResponse(await _services(request).bank.withdrawals.get(withdrawal_id))


async def review_queue(request: Request) -> Response:
    """Admin: withdrawals awaiting review, oldest first.
    ---
    auth: [admin]
    query: {limit: integer}
    responses: {200: WithdrawalList}
    errors: [forbidden, invalid_field]
    """
    _require_role(_principal(request), "admin")
    limit = _int_param(request, "limit", 100, 1, 1000)
    return JSONResponse({"withdrawals": await _services(request).bank.withdrawals.awaiting_review(limit=limit)})


async def user_withdrawals(request: Request) -> Response:
    """Admin: one creator's withdrawals.
    ---
    auth: [admin]
    responses: {200: WithdrawalList}
    errors: [forbidden, invalid_field]
    """
    _require_role(_principal(request), "admin")
    creator = check_user_id(request.path_params["user_id"])
    return JSONResponse({"withdrawals": await _services(request).bank.withdrawals.list(creator)})


async def approve_withdrawal(request: Request) -> Response:
    """Admin: approve a pending withdrawal and send its payout; the provider's webhook settles it.
    In the sandbox, `outcome` and `deliveries` choose what the provider does.
    ---
    auth: [admin]
    body: Approval
    responses: {202: Withdrawal}
    errors: [forbidden, bad_request, invalid_field, unknown_withdrawal, withdrawal_state]
    """
    principal = _principal(request)
    _require_role(principal, "admin")
    services = _services(request)
    data = await _json_body(request)
    outcome, deliveries = data.get("outcome", "succeed"), data.get("deliveries", 1)
    if outcome not in ("succeed", "fail") or type(deliveries) is not int or not 1 <= deliveries <= 5:
        raise InvalidField("outcome is succeed or fail; deliveries is 1 to 5")
    sandbox = services.sandbox if services.settings.sandbox_payments else None
    withdrawal = await approve(services.bank.withdrawals, sandbox, request.path_params["withdrawal_id"],
                               admin=principal.user_id, succeed=outcome == "succeed", deliveries=deliveries)
    return JSONResponse(withdrawal, status_code=202)


async def reject_withdrawal(request: Request) -> Response:
    """Admin: refuse a pending withdrawal; its held diamonds go back to the creator.
    ---
    auth: [admin]
    body: Rejection
    responses: {200: Withdrawal}
    errors: [forbidden, bad_request, invalid_field, unknown_withdrawal, withdrawal_state]
    """
    principal = _principal(request)
    _require_role(principal, "admin")
    reason = check_reason((await _json_body(request)).get("reason"))
    withdrawals = _services(request).bank.withdrawals
    withdrawal_id = request.path_params["withdrawal_id"]
    await withdrawals.step(withdrawal_id, "failed", who=principal.user_id, reason=reason)
    return JSONResponse(await withdrawals.get(withdrawal_id))


async def payout_webhook(request: Request) -> Response:
    """Payout provider events: settles a withdrawal exactly once (paid, or failed and released).
    ---
    auth: signature
    body: PayoutEvent
    responses: {200: PayoutResult}
    errors: [bad_signature, stale_timestamp, bad_request, invalid_field, unknown_withdrawal, withdrawal_state]
    """
    return await signed_webhook(request, handle_payout_webhook, _services(request).bank.withdrawals)


routes = [
    Route("/v1/withdrawals", request_withdrawal, methods=["POST"]),
    Route("/v1/me/withdrawals", my_withdrawals),
    Route("/v1/withdrawals/{withdrawal_id}", get_withdrawal),
    Route("/v1/admin/withdrawals", review_queue),
    Route("/v1/admin/users/{user_id}/withdrawals", user_withdrawals),
    Route("/v1/admin/withdrawals/{withdrawal_id}/approve", approve_withdrawal, methods=["POST"]),
    Route("/v1/admin/withdrawals/{withdrawal_id}/reject", reject_withdrawal, methods=["POST"]),
    Route(PAYOUT_WEBHOOK_PATH, payout_webhook, methods=["POST"]),
]
