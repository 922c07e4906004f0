"""Signed payment-webhook deliveries, as a payment provider makes them (docs/http.md)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import httpx

from server import signing
from server.payments import WEBHOOK_PATH


def payment_event(order: dict[str, Any], payment_id: str, *, succeeded: bool = True) -> bytes:
    data: dict[str, Any] = {"payment_id": payment_id, "order_id": order["id"]}
    if succeeded:
        data.update(amount=order["price"], currency=order["currency"], method=order["method"])
    else:
        data["reason"] = "card_declined"
    event = {"id": "evt_" + secrets.token_hex(6), "type": "payment.succeeded" if succeeded else "payment.failed",
             "created": int(time.time()), "data": data}
    return json.dumps(event).encode()


async def deliver(http: httpx.AsyncClient, body: bytes, secret: str, *, age_s: int = 0) -> httpx.Response:
    """POST one delivery signed `age_s` seconds ago (a late or replayed delivery)."""
    header = signing.signature_header(secret, int(time.time()) - age_s, body)
    return await http.post(WEBHOOK_PATH, content=body, headers={signing.SIGNATURE_HEADER: header})
