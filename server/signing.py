"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``. Pure; the clock is passed in.

Header form (``Giftcast-Signature``): ``t=<unix seconds>,v1=<hex digest>``. A receiver
rejects a bad or missing signature (BadSignature) and a timestamp further than the tolerance
from its clock (StaleTimestamp), so a captured delivery cannot be replayed later; replays
inside the window are harmless because every webhook effect is idempotent.
"""

from __future__ import annotations

import hashlib
import hmac

from server.errors import BadSignature, StaleTimestamp

__all__ = ["SIGNATURE_HEADER", "sign", "signature_header", "verify"]

SIGNATURE_HEADER = "giftcast-signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str | None, body: bytes, *, now: int, tolerance_s: int) -> int:
    """Check a signature header; returns its timestamp."""
    if not header:
        raise BadSignature("missing signature header")
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
        digest = fields["v1"]
    except (KeyError, ValueError):
        raise BadSignature("malformed signature header") from None
    if not hmac.compare_digest(digest, sign(secret, timestamp, body)):
        raise BadSignature("signature does not match")
    if abs(now - timestamp) > tolerance_s:
        raise StaleTimestamp("signature timestamp is outside the tolerance window")
    return timestamp
