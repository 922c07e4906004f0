"""Payments: the webhook that credits and reverses recharges, and the sandbox provider.

The webhook contract is the one real providers offer: each event is POSTed as JSON with a
``Giftcast-Signature: t=<unix>,v1=<hmac>`` header (see `signing.py`), delivered at least once,
retried until it gets a 2xx, possibly late or out of order. The handler therefore verifies the
signature and the timestamp, then applies the event idempotently: a payment credits its order
exactly once, and a refund or chargeback takes it back exactly once, however often delivered.

    {"id": "evt_...", "type": "payment.succeeded" | "payment.failed"
                             | "payment.refunded" | "payment.charged_back", "created": <unix>,
     "data": {"payment_id", "order_id", "amount", "currency", "method", "reason"?, "reversal_id"?}}

Payouts (withdrawals) use the same contract on their own path (`payouts.py`).

`SandboxProvider` stands in for the payment network we cannot reach from here: it "charges"
an order (card, PayPal or mobile wallet; succeed or decline on request), refunds or charges
back a paid one, pays out withdrawals, and delivers the signed webhooks over real HTTP with
retries and backoff, possibly several times.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import secrets
import time
from typing import Any

import httpx

from server import signing
from server.errors import BadRequest, InvalidField
from server.order_store import PAYMENT_METHODS, OrderStore

__all__ = ["handle_payment_webhook", "verified_event", "WebhookEvent", "provider_id", "amount_of", "SandboxProvider",
           "WEBHOOK_PATH", "PAYOUT_WEBHOOK_PATH"]

log = logging.getLogger("giftcast.payments")
WEBHOOK_PATH = "/v1/webhooks/payments"
PAYOUT_WEBHOOK_PATH = "/v1/webhooks/payouts"
_REVERSALS = {"payment.refunded": ("refund", "refunded"), "payment.charged_back": ("chargeback", "charged_back")}


@dataclasses.dataclass(frozen=True, slots=True)
class WebhookEvent:
    kind: str
    data: dict[str, Any]
    subject: Any  # what it is about: an order id, a withdrawal id (the store checks its form)
    provider_id: str  # the provider's payment or payout id


def verified_event(*, secret: str, tolerance_s: int, header: str | None, body: bytes, now: int, subject: str,
                   provider_field: str) -> WebhookEvent:
    """A delivery whose signature and timestamp verify, with its `subject` and provider id
    fields present; raises an error-tree leaf otherwise."""
    signing.verify(secret, header, body, now=now, tolerance_s=tolerance_s)
    try:
        event = json.loads(body)
        kind, data = event["type"], event["data"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise BadRequest("webhook body is not an event") from None
    if not isinstance(data, dict) or subject not in data:
        raise BadRequest(f"webhook data must be an object with {subject}")
    return WebhookEvent(str(kind), data, data[subject], provider_id(data, provider_field))


def provider_id(data: dict[str, Any], name: str) -> str:
    """A provider's id field: a 1-64 character string (BadRequest if missing)."""
    if name not in data:
        raise BadRequest(f"webhook data needs {name}")
    value = data[name]
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise InvalidField(f"{name} must be a short string")
    return value


def amount_of(data: dict[str, Any]) -> tuple[int, str]:
    amount, currency = data.get("amount"), data.get("currency")
    if type(amount) is not int or not isinstance(currency, str):
        raise InvalidField("amount and currency are required")
    return amount, currency


async def handle_payment_webhook(
    orders: OrderStore, *, secret: str, tolerance_s: int, header: str | None, body: bytes, now: int
) -> dict[str, Any]:
    """Verify and apply one delivery. Raises an error-tree leaf; applies nothing on error."""
    event = verified_event(secret=secret, tolerance_s=tolerance_s, header=header, body=body, now=now,
                           subject="order_id", provider_field="payment_id")
    kind, data, order_id, payment_id = event.kind, event.data, event.subject, event.provider_id
    if kind == "payment.succeeded":
        amount, currency = amount_of(data)
        if data.get("method") not in PAYMENT_METHODS:
            raise InvalidField("amount, currency and method are required")
        result = await orders.credit(order_id, payment_id, amount, currency, data["method"])
        return {"order_id": result.order_id, "status": "paid", "credited": result.credited,
                "replay": result.replay}
    if kind == "payment.failed":
        status = await orders.fail(order_id, payment_id, str(data.get("reason", "declined"))[:120])
        return {"order_id": order_id, "status": status}
    if kind in _REVERSALS:
        reversal, status = _REVERSALS[kind]
        amount, currency = amount_of(data)
        result = await orders.reverse(order_id, reversal, provider_id(data, "reversal_id"), payment_id, amount,
                                      currency)
        return {"order_id": order_id, "status": status, "removed": result.removed, "locked": result.locked,
                "replay": result.replay}
    raise BadRequest(f"unknown event type {str(kind)[:40]!r}")


class SandboxProvider:
    """A stand-in payment network: charges, reverses and pays out, with signed webhooks."""

    RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

    def __init__(self, webhook_url: str, secret: str):
        self._webhook_url = webhook_url
        self._payout_url = webhook_url.removesuffix(WEBHOOK_PATH) + PAYOUT_WEBHOOK_PATH
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=5.0)
        self._deliveries: set[asyncio.Task[None]] = set()

    def charge(self, order: dict[str, Any], *, method: str, succeed: bool, deliveries: int = 1) -> str:
        """Charge an order; its webhook is delivered `deliveries` times (at-least-once)."""
        if method not in PAYMENT_METHODS:
            raise InvalidField(f"method must be one of {', '.join(PAYMENT_METHODS)}")
        payment_id = "pay_" + secrets.token_hex(10)
        data: dict[str, Any] = {"payment_id": payment_id, "order_id": order["id"], "amount": order["price"],
                                "currency": order["currency"], "method": method}
        if not succeed:
            data["reason"] = "card_declined" if method == "card" else "declined"
        self._send(self._webhook_url, "payment.succeeded" if succeed else "payment.failed", data, deliveries)
        return payment_id

    def reverse(self, order: dict[str, Any], *, kind: str, amount: int, deliveries: int = 1) -> str:
        """Refund (`kind` "refund") or lose a dispute over ("chargeback") `amount` (minor units)
        of a paid order's payment: all of it, or a part."""
        reversal_id = ("re_" if kind == "refund" else "dp_") + secrets.token_hex(10)
        data = {"payment_id": order["payment_id"], "order_id": order["id"], "reversal_id": reversal_id,
                "amount": amount, "currency": order["currency"]}
        self._send(self._webhook_url, "payment.refunded" if kind == "refund" else "payment.charged_back", data,
                   deliveries)
        return reversal_id

    def payout(self, withdrawal: dict[str, Any], *, payout_id: str, succeed: bool, deliveries: int = 1) -> None:
        """Pay a withdrawal's cash out (or fail to: the account was closed)."""
        data: dict[str, Any] = {"payout_id": payout_id, "withdrawal_id": withdrawal["id"],
                                "amount": withdrawal["cash"], "currency": withdrawal["currency"]}
        if not succeed:
            data["reason"] = "account_closed"
        self._send(self._payout_url, "payout.paid" if succeed else "payout.failed", data, deliveries)

    def _send(self, url: str, kind: str, data: dict[str, Any], deliveries: int) -> None:
        event = {"id": "evt_" + secrets.token_hex(10), "type": kind, "created": int(time.time()), "data": data}
        body = json.dumps(event, separators=(",", ":")).encode()
        for _ in range(max(1, min(deliveries, 5))):
            task = asyncio.create_task(self._deliver(url, body))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, url: str, body: bytes) -> None:
        for attempt, delay in enumerate((0.0, *self.RETRY_DELAYS_S)):
            await asyncio.sleep(delay)
            # Signed at send time, as providers do, so a retry is never stale.
            header = signing.signature_header(self._secret, int(time.time()), body)
            try:
                response = await self._client.post(
                    url, content=body,
                    headers={"content-type": "application/json", signing.SIGNATURE_HEADER: header},
                )
                if response.is_success:
                    return
                # 4xx other than 429 will not get better: the event is dead.
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    log.warning("webhook rejected (%s): %s", response.status_code, response.text[:200])
                    return
            except httpx.HTTPError as exc:
                log.info("webhook delivery attempt %d failed: %s", attempt + 1, exc)
        log.error("webhook delivery gave up after %d attempts", len(self.RETRY_DELAYS_S) + 1)

    async def aclose(self) -> None:
        """Let deliveries in flight finish briefly, then stop."""
        if self._deliveries:
            await asyncio.wait(self._deliveries, timeout=2.0)
        for task in self._deliveries:
            task.cancel()
        await self._client.aclose()
