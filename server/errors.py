"""One error tree for giftcast. Every leaf carries a stable wire `code` and an HTTP `status`.

The wire code is what clients see in `error` frames and in HTTP error bodies
(`{"error": {"code": ..., "message": ...}}`); it never changes once published.

    GiftcastError                      internal            500
    ├── ConfigError                    config_error        500
    ├── BadRequest                     bad_request         400
    │   ├── MalformedFrame             malformed_frame     400
    │   ├── UnknownFrameType           unknown_frame_type  400
    │   ├── InvalidField               invalid_field       400
    │   ├── InvalidCount               invalid_count       400
    │   ├── InvalidIdempotencyKey      invalid_idempotency_key 400
    │   └── BelowMinimum               below_minimum       400
    ├── Unauthorized                   unauthorized        401
    │   ├── TokenMissing               token_missing       401
    │   ├── TokenInvalid               token_invalid       401
    │   ├── TokenExpired               token_expired       401
    │   ├── BadSignature               bad_signature       401
    │   └── StaleTimestamp             stale_timestamp     401
    ├── Forbidden                      forbidden           403
    │   ├── SelfGift                   self_gift           403
    │   ├── AgeRestricted              age_restricted      403
    │   ├── AccountLocked              account_locked      403
    │   ├── AccountRestricted          account_restricted  403
    │   └── NotAvailable               not_available       403
    ├── NotFound                       not_found           404
    │   ├── UnknownGift                unknown_gift        404
    │   ├── UnknownBundle              unknown_bundle      404
    │   ├── UnknownOrder               unknown_order       404
    │   ├── UnknownRegion              unknown_region      404
    │   ├── UnknownItem                unknown_item        404
    │   ├── UnknownWithdrawal          unknown_withdrawal  404
    │   └── UnknownWebhook             unknown_webhook     404
    ├── Conflict                       conflict            409
    │   ├── InsufficientFunds          insufficient_funds  409
    │   ├── RoomClosed                 room_closed         409
    │   ├── NotInRoom                  not_in_room         409
    │   ├── TooManyRooms               too_many_rooms      409
    │   ├── IdempotencyConflict        idempotency_conflict 409
    │   ├── OrderState                 order_state         409
    │   ├── SpendingLimit              spending_limit      409
    │   ├── WithdrawalLimit            withdrawal_limit    409
    │   ├── WithdrawalState            withdrawal_state    409
    │   └── TooManyWebhooks            too_many_webhooks   409
    ├── TooManyConnections             too_many_connections 429
    ├── RateLimited                    rate_limited        429  (+ retry_after_ms)
    └── Unavailable                    unavailable         503
        └── DurabilityUnknown          durability_unknown  503
"""

from __future__ import annotations

__all__ = [
    "GiftcastError", "ConfigError", "BadRequest", "MalformedFrame", "UnknownFrameType",
    "InvalidField", "InvalidCount", "InvalidIdempotencyKey", "Unauthorized", "TokenMissing",
    "TokenInvalid", "TokenExpired", "BadSignature", "StaleTimestamp", "Forbidden", "SelfGift",
    "NotFound", "UnknownGift", "UnknownBundle", "UnknownOrder", "UnknownRegion", "Conflict",
    "InsufficientFunds", "RoomClosed", "NotInRoom", "TooManyRooms", "IdempotencyConflict",
    "OrderState", "TooManyConnections", "Unavailable", "error_for_code", "BelowMinimum", "AgeRestricted", "AccountLocked",
    "AccountRestricted", "NotAvailable", "UnknownItem", "UnknownWithdrawal", "SpendingLimit",
    "WithdrawalLimit", "WithdrawalState", "RateLimited", "TooManyWebhooks", "UnknownWebhook", "DurabilityUnknown",
]


class GiftcastError(Exception):
    """Base of every error giftcast reports to a client. `message` is safe to show."""

    code = "internal"
    status = 500

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.code.replace("_", " "))
        self.message = message or self.code.replace("_", " ")

    def to_wire(self) -> dict[str, str | int]:
        return {"code": self.code, "message": self.message}


class ConfigError(GiftcastError):
    code = "config_error"


class BadRequest(GiftcastError):
    code, status = "bad_request", 400


class MalformedFrame(BadRequest):
    code = "malformed_frame"


class UnknownFrameType(BadRequest):
    code = "unknown_frame_type"


class InvalidField(BadRequest):
    code = "invalid_field"


class InvalidCount(BadRequest):
    code = "invalid_count"


class InvalidIdempotencyKey(BadRequest):
    code = "invalid_idempotency_key"


class BelowMinimum(BadRequest):
    code = "below_minimum"


class Unauthorized(GiftcastError):
    code, status = "unauthorized", 401


class TokenMissing(Unauthorized):
    code = "token_missing"


class TokenInvalid(Unauthorized):
    code = "token_invalid"


class TokenExpired(Unauthorized):
    code = "token_expired"


class BadSignature(Unauthorized):
    code = "bad_signature"


class StaleTimestamp(Unauthorized):
    code = "stale_timestamp"


class Forbidden(GiftcastError):
    code, status = "forbidden", 403


class SelfGift(Forbidden):
    code = "self_gift"


class AgeRestricted(Forbidden):
    code = "age_restricted"


class AccountLocked(Forbidden):
    code = "account_locked"


class AccountRestricted(Forbidden):
    code = "account_restricted"


class NotAvailable(Forbidden):
    code = "not_available"


class NotFound(GiftcastError):
    code, status = "not_found", 404


class UnknownGift(NotFound):
    code = "unknown_gift"


class UnknownBundle(NotFound):
    code = "unknown_bundle"


class UnknownOrder(NotFound):
    code = "unknown_order"


class UnknownRegion(NotFound):
    code = "unknown_region"


class UnknownItem(NotFound):
    code = "unknown_item"


class UnknownWithdrawal(NotFound):
    code = "unknown_withdrawal"


class UnknownWebhook(NotFound):
    code = "unknown_webhook"


class Conflict(GiftcastError):
    code, status = "conflict", 409


class InsufficientFunds(Conflict):
    code = "insufficient_funds"


class RoomClosed(Conflict):
    code = "room_closed"


class NotInRoom(Conflict):
    code = "not_in_room"


class TooManyRooms(Conflict):
    code = "too_many_rooms"


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


class OrderState(Conflict):
    code = "order_state"


class SpendingLimit(Conflict):
    code = "spending_limit"


class WithdrawalLimit(Conflict):
    code = "withdrawal_limit"


class WithdrawalState(Conflict):
    code = "withdrawal_state"


class TooManyWebhooks(Conflict):
    code = "too_many_webhooks"


class TooManyConnections(GiftcastError):
    code, status = "too_many_connections", 429


class RateLimited(GiftcastError):
    """Too many requests; `retry_after_ms` says when the same request would be accepted."""

    code, status = "rate_limited", 429

    def __init__(self, message: str | None = None, *, retry_after_ms: int = 0) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms

    def to_wire(self) -> dict[str, str | int]:
        return {**super().to_wire(), "retry_after_ms": self.retry_after_ms}


class Unavailable(GiftcastError):
    code, status = "unavailable", 503


class DurabilityUnknown(Unavailable):
    """A money operation ran on the primary but its replicas did not confirm it in time
    (server/durable.py): it stands unless a failover loses it; retry with the same key to learn."""

    code = "durability_unknown"


def _leaves(cls: type[GiftcastError]) -> list[type[GiftcastError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_leaves(sub))
    return found


_BY_CODE: dict[str, type[GiftcastError]] = {cls.code: cls for cls in _leaves(GiftcastError)}


def error_for_code(code: str, message: str | None = None) -> GiftcastError:
    """The error for a wire code (as Lua scripts return them); unknown codes are internal."""
    return _BY_CODE.get(code, GiftcastError)(message)
