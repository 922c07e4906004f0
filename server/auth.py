"""Bearer tokens: signed (HMAC-SHA256), expiring, audience-bound. Pure: no I/O, no clock reads.

Wire form: ``gc1.<base64url(json claims)>.<base64url(hmac)>`` where the HMAC covers
``gc1.<claims>``. Claims: ``sub`` (user id), ``role``, ``aud`` ("giftcast"), ``iat``, ``exp``.

Roles and what they may do:
- ``viewer``: own wallet, orders, ledger; join rooms; send gifts.
- ``creator``: everything a viewer may, plus open/close their own live room.
- ``admin``: admin endpoints (never implied by the other roles).
- ``overlay``: read-only: join the creator's own room (``sub`` is the creator). It cannot send
  gifts or read the wallet, so it is safe to paste into a streaming tool.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
from typing import Literal

from server.errors import InvalidField, TokenExpired, TokenInvalid, TokenMissing

__all__ = ["Principal", "Role", "ROLES", "bearer_token", "mint_token", "verify_token", "check_user_id"]

Role = Literal["viewer", "creator", "admin", "overlay"]
ROLES: tuple[Role, ...] = ("viewer", "creator", "admin", "overlay")
AUDIENCE = "giftcast"
_PREFIX = "gc1"
USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: Role

    @property
    def can_spend(self) -> bool:
        """May send gifts and buy coins: real accounts, never an overlay or an admin session."""
        return self.role in ("viewer", "creator")

    @property
    def can_read_wallet(self) -> bool:
        return self.role in ("viewer", "creator", "admin")


def check_user_id(user_id: object) -> str:
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise InvalidField("user ids are 1-64 characters of A-Z a-z 0-9 _ -")
    return user_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, signed: str) -> bytes:
    return hmac.new(secret.encode(), signed.encode("ascii"), hashlib.sha256).digest()


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The credential a request carries: ``Authorization: Bearer <t>`` wins over ``?token=``
    (browsers cannot set headers on a WebSocket, so they use the query)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query_token or None


def mint_token(secret: str, user_id: str, role: Role, *, now: int, ttl_s: int) -> str:
    if role not in ROLES:
        raise InvalidField(f"role must be one of {', '.join(ROLES)}")
    claims = {"sub": check_user_id(user_id), "role": role, "aud": AUDIENCE, "iat": now, "exp": now + ttl_s}
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signed = f"{_PREFIX}.{body}"
    return f"{signed}.{_b64(_mac(secret, signed))}"


def verify_token(secret: str, token: str | None, *, now: int) -> Principal:
    """The principal a token names, or TokenMissing / TokenInvalid / TokenExpired."""
    if not token:
        raise TokenMissing("a bearer token is required")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX or len(token) > 2048:
        raise TokenInvalid("token is malformed")
    try:
        signature = _unb64(parts[2])
    except (ValueError, UnicodeEncodeError):
        raise TokenInvalid("token is malformed") from None
    if not hmac.compare_digest(signature, _mac(secret, f"{parts[0]}.{parts[1]}")):
        raise TokenInvalid("token signature does not verify")
    try:
        claims = json.loads(_unb64(parts[1]))
        sub, role, aud, exp = claims["sub"], claims["role"], claims["aud"], claims["exp"]
    except (ValueError, KeyError, TypeError):
        raise TokenInvalid("token claims are malformed") from None
    if aud != AUDIENCE:
        raise TokenInvalid("token is for another audience")
    if role not in ROLES or not isinstance(sub, str) or not USER_ID.fullmatch(sub):
        raise TokenInvalid("token claims are malformed")
    if type(exp) is not int or exp <= now:
        raise TokenExpired("token has expired")
    return Principal(sub, role)
