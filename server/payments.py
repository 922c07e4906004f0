"""Payments: the webhook that credits recharges, and the sandbox provider that calls it.

The webhook contract is the one real providers offer: each event is POSTed as JSON with a
``Giftcast-Signature: t=<unix>,v1=<hmac>`` header (see `signing.py`), delivered at least once,
retried until it gets a 2xx, possibly late or out of order. The handler therefore verifies the
signature and the timestamp, then applies the event idempotently: a payment credits its order
exactly once however often it is delivered.

    {"id": "evt_...", "type": "payment.succeeded" | "payment.failed", "created": <unix>,
     "data": {"payment_id", "order_id", "amount", "currency", "method", "reason"?}}

`SandboxProvider` stands in for the payment network we cannot reach from here: it "charges"
an order (card, PayPal or mobile wallet; succeed or decline on request) and delivers the signed
webhook over real HTTP with retries and backoff, and can deliver the same event several times.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

import httpx

from server import signing
from server.errors import BadRequest, InvalidField
from server.order_store import PAYMENT_METHODS, OrderStore

__all__ = ["handle_payment_webhook", "SandboxProvider", "WEBHOOK_PATH"]

log = logging.getLogger("giftcast.payments")
WEBHOOK_PATH = "/v1/webhooks/payments"


async def handle_payment_webhook(
    orders: OrderStore, *, secret: str, tolerance_s: int, header: str | None, body: bytes, now: int
) -> dict[str, Any]:
    """Verify and apply one delivery. Raises an error-tree leaf; applies nothing on error."""
    signing.verify(secret, header, body, now=now, tolerance_s=tolerance_s)
    try:
        event = json.loads(body)
        kind, data = event["type"], event["data"]
        order_id, payment_id = data["order_id"], data["payment_id"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise BadRequest("webhook body is not a payment event") from None
    if not isinstance(payment_id, str) or not 1 <= len(payment_id) <= 64:
        raise InvalidField("payment_id must be a short string")
    if kind == "payment.succeeded":
        amount, currency, method = data.get("amount"), data.get("currency"), data.get("method")
        if type(amount) is not int or not isinstance(currency, str) or method not in PAYMENT_METHODS:
            raise InvalidField("amount, currency and method are required")
        result = await orders.credit(order_id, payment_id, amount, currency, method)
        return {"order_id": result.order_id, "status": "paid", "credited": result.credited,
                "replay": result.replay}
    if kind == "payment.failed":
        status = await orders.fail(order_id, payment_id, str(data.get("reason", "declined"))[:120])
        return {"order_id": order_id, "status": status}
    raise BadRequest(f"unknown event type {str(kind)[:40]!r}")


class SandboxProvider:
    """A stand-in payment network: charges orders and delivers signed webhooks with retries."""

    RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

    def __init__(self, webhook_url: str, secret: str):
        self._webhook_url = webhook_url
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
        event = {"id": "evt_" + secrets.token_hex(10), "type": "payment.succeeded" if succeed else "payment.failed",
                 "created": int(time.time()), "data": data}
        body = json.dumps(event, separators=(",", ":")).encode()
        for _ in range(max(1, min(deliveries, 5))):
            task = asyncio.create_task(self._deliver(body))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        return payment_id

    async def _deliver(self, body: bytes) -> None:
        for attempt, delay in enumerate((0.0, *self.RETRY_DELAYS_S)):
            await asyncio.sleep(delay)
            # Signed at send time, as providers do, so a retry is never stale.
            header = signing.signature_header(self._secret, int(time.time()), body)
            try:
                response = await self._client.post(
                    self._webhook_url, content=body,
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
