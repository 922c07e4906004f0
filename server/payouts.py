"""Payouts: the payout leg of a withdrawal, through the provider, exactly once.

An admin approves a pending withdrawal (`approve`): it moves to ``processing`` with a payout id
derived from the withdrawal id, so approving again (say, after a crash between the two steps)
re-sends the *same* payout, which the provider de-duplicates. The provider then reports the
outcome with a signed webhook on ``/v1/webhooks/payouts``, same contract as payments
(`payments.verified_event`), delivered at least once:

    {"id": "evt_...", "type": "payout.paid" | "payout.failed", "created": <unix>,
     "data": {"payout_id", "withdrawal_id", "amount", "currency", "reason"?}}

``payout.paid`` pays out the held diamonds (the amount and currency must be the withdrawal's
cash value); ``payout.failed`` returns them to the creator. Each applies once; a repeat is a
replay; a failure after success never undoes it. The only provider giftcast has is the sandbox:
with ``GIFTCAST_SANDBOX_PAYMENTS`` off, an approval waits for a real provider's webhook.
"""

from __future__ import annotations

import hashlib
from typing import Any

from server.errors import BadRequest
from server.payments import SandboxProvider, amount_of, verified_event
from server.withdrawal_store import WithdrawalStore

__all__ = ["handle_payout_webhook", "approve", "payout_id_for"]


def payout_id_for(withdrawal_id: str) -> str:
    return "po_" + hashlib.sha256(withdrawal_id.encode()).hexdigest()[:24]


async def approve(withdrawals: WithdrawalStore, sandbox: SandboxProvider | None, withdrawal_id: str, *, admin: str,
                  succeed: bool = True, deliveries: int = 1) -> dict[str, Any]:
    """Approve a pending (or re-send a processing) withdrawal's payout."""
    payout_id = payout_id_for(withdrawal_id)
    await withdrawals.step(withdrawal_id, "processing", payout_id=payout_id, who=admin)
    withdrawal = await withdrawals.get(withdrawal_id)
    if sandbox is not None and withdrawal["status"] == "processing":
        sandbox.payout(withdrawal, payout_id=payout_id, succeed=succeed, deliveries=deliveries)
    return withdrawal


async def handle_payout_webhook(
    withdrawals: WithdrawalStore, *, secret: str, tolerance_s: int, header: str | None, body: bytes, now: int
) -> dict[str, Any]:
    """Verify and apply one payout delivery. Raises an error-tree leaf; applies nothing on error."""
    event = verified_event(secret=secret, tolerance_s=tolerance_s, header=header, body=body, now=now,
                           subject="withdrawal_id", provider_field="payout_id")
    withdrawal_id, payout_id, kind = event.subject, event.provider_id, event.kind
    if kind == "payout.paid":
        amount, currency = amount_of(event.data)
        status, replay = await withdrawals.step(withdrawal_id, "paid", payout_id=payout_id, who="provider",
                                                cash=amount, currency=currency)
    elif kind == "payout.failed":
        status, replay = await withdrawals.step(withdrawal_id, "failed", payout_id=payout_id, who="provider",
                                                reason=str(event.data.get("reason", "failed"))[:120])
    else:
        raise BadRequest(f"unknown event type {str(kind)[:40]!r}")
    return {"withdrawal_id": withdrawal_id, "status": status, "replay": replay}
