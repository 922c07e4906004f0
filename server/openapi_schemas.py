"""The shapes of the HTTP API's bodies, as OpenAPI 3.1 (JSON Schema) components.

Handlers name them in their docstrings (`body: OrderRequest`, `responses: {201: Order}`);
server/openapi.py puts them under components/schemas. tests/test_openapi.py checks real responses
against them, so a shape that drifts from the code fails there.
"""

from __future__ import annotations

from typing import Any

from server.hook_events import EVENT_TYPES

__all__ = ["SCHEMAS", "ref"]

INT, STR, BOOL = {"type": "integer"}, {"type": "string"}, {"type": "boolean"}
OPT_INT, OPT_STR = {"type": ["integer", "null"]}, {"type": ["string", "null"]}


def obj(**props: Any) -> dict[str, Any]:
    """An object schema; every property is required unless its name ends with '?'."""
    return {"type": "object", "properties": {k.rstrip("?"): v for k, v in props.items()},
            "required": [k for k in props if not k.endswith("?")]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


AVAILABILITY = {"regions": array(STR), "available_from": OPT_INT, "available_until": OPT_INT}
WITHDRAWAL = obj(id=STR, creator=STR, status={"enum": ["pending", "processing", "paid", "failed"]}, diamonds=INT, cash=INT,
                 currency=STR, region=STR, rate_version=INT, cash_per_1000_diamonds=INT, method=STR, key=STR,
                 created_at=INT, **{"replay?": BOOL, "payout_id?": STR, "paid_at?": INT, "approved_by?": STR,
                                    "failure?": STR, "failed_by?": STR, "failed_at?": INT})
LIMIT = obj(spent=INT, platform_cap=OPT_INT, self_limit=OPT_INT,
            pending={"oneOf": [{"type": "null"}, obj(limit=OPT_INT, from_ms=INT)]})
STATEMENT = obj(user_id=STR, entries=array(obj(id=STR, kind=STR, unit={"enum": ["coins", "diamonds"]}, delta=INT,
                                               balance=INT, ts=INT)), next=OPT_STR)
PROFILE = {"user_id": STR, "region": STR, "birth_date": OPT_STR, "account_type": {"enum": ["personal", "business"]}}
ORDER = obj(id=STR, buyer=STR, bundle_id=STR, coins=INT, bonus_coins=INT, price=INT, currency=STR, region=STR,
            method=STR, status={"enum": ["pending", "paid", "failed", "refunded", "charged_back"]}, created_at=INT, **{
                "checkout_url?": STR, "payment_id?": STR, "paid_at?": INT, "failed_payment_id?": STR,
                "failure?": STR, "failed_at?": INT, "credited?": INT, "reversal_id?": STR, "reversed_at?": INT,
                "reversed_amount?": INT, "reversed_coins?": INT,
                "reversals?": {"type": "object", "additionalProperties": obj(amount=INT, coins=INT)}})
RATE = obj(region=STR, version=INT, from_ms=OPT_INT, rate_bp=INT, cash_per_1000_diamonds=INT, currency=STR)

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": obj(error=obj(code=STR, message=STR)),
    "Health": obj(status={"enum": ["ok", "unavailable"]}),
    "TokenRequest": obj(user_id=STR, **{"role?": {"enum": ["viewer", "creator", "admin", "overlay"]}}),
    "Token": obj(token=STR, expires_at=INT),
    "OverlayToken": obj(token=STR, expires_at=INT, overlay_url=STR),
    "BundleList": obj(region=STR, bundles=array(obj(id=STR, coins=INT, bonus_coins=INT, price=INT, currency=STR,
                                                    region=STR)),
                      campaigns=array(obj(id=STR, kind=STR, percent=OPT_INT, coins=OPT_INT, available_until=OPT_INT))),
    "GiftList": obj(region=STR, gifts=array(obj(id=STR, name=STR, coins=INT, tier=INT, combo=BOOL, animation_ms=INT,
                                                **AVAILABILITY))),
    "GoodsList": obj(region=STR, goods=array(obj(id=STR, name=STR, kind={"enum": ["effect", "filter", "badge"]},
                                                 coins=INT, **AVAILABILITY))),
    "Rate": RATE,
    "RateList": obj(rates={"type": "object", "additionalProperties": array(RATE)}),
    "RateChange": obj(region=STR, rate_bp=INT, cash_per_1000_diamonds=INT, **{"from?": INT}),
    "LockedAccounts": obj(accounts=array(obj(user_id=STR, coins=INT, locked=STR, since=INT))),
    "Wallet": obj(user_id=STR, coins=INT, diamonds=INT, **{"diamonds_held?": INT, "locked?": OPT_STR}),
    "Ledger": obj(user_id=STR, entries=array(obj(id=STR, kind=STR, unit={"enum": ["coins", "diamonds"]},
                                                 delta=INT, balance=INT))),
    "OrderRequest": obj(bundle_id=STR, **{"method?": {"enum": ["card", "paypal", "wallet"]}, "region?": STR}),
    "Order": ORDER,
    "OrderList": obj(orders=array(ORDER)),
    "LiveState": obj(room=STR, status={"enum": ["open", "closed"]}, live_id=STR, seq=INT, changed=BOOL),
    "Goal": obj(diamonds={"type": "integer", "minimum": 0, "maximum": 10**12}),
    "GoalState": obj(room=STR, goal=INT, seq=INT),
    "Snapshot": obj(room=STR, status={"enum": ["open", "closed"]}, live_id=STR, seq=INT, epoch=STR, live_coins=INT,
                    live_diamonds=INT, live_gifts=INT, creator_diamonds=INT, goal=INT,
                    top=array({"type": "array", "prefixItems": [STR, INT]}), viewers=INT),
    "Leaderboard": obj(room=STR, period={"enum": ["live", "week", "all"]},
                       top=array({"type": "array", "prefixItems": [STR, INT]})),
    "PaymentEvent": obj(type={"enum": ["payment.succeeded", "payment.failed", "payment.refunded",
                                            "payment.charged_back"]},
                        data=obj(payment_id=STR, order_id=STR, **{"amount?": INT, "currency?": STR,
                                                                 "method?": STR, "reason?": STR,
                                                                 "reversal_id?": STR})),
    "PaymentResult": obj(order_id=STR, status=STR, **{"credited?": INT, "replay?": BOOL}),
    "Checkout": obj(**{"outcome?": {"enum": ["succeed", "decline"]},
                       "deliveries?": {"type": "integer", "minimum": 1, "maximum": 5},
                       "method?": {"enum": ["card", "paypal", "wallet"]}}),
    "CheckoutStarted": obj(payment_id=STR, order_id=STR),
    "WebhookRequest": obj(url=STR, **{"events?": array({"enum": list(EVENT_TYPES)})}),
    "Webhook": obj(id=STR, url=STR, events=array(STR), secret=STR, created_at=INT),
    "WebhookList": obj(webhooks=array(obj(id=STR, url=STR, events=array(STR), created_at=INT, delivered_seq=INT,
                                          attempts=INT, last_error=STR))),
    "WebhookDeleted": obj(deleted=STR),
    "Profile": obj(**PROFILE),
    "MyProfile": obj(**PROFILE, min_age=INT),
    "ProfileUpdate": obj(**{"region?": OPT_STR, "birth_date?": OPT_STR,
                            "account_type?": {"enum": ["personal", "business", None]}}),
    "SpendingLimits": obj(user_id=STR, day=LIMIT, week=LIMIT),
    "SpendingLimitsUpdate": obj(**{"day?": OPT_INT, "week?": OPT_INT}),
    "PurchaseRequest": obj(good_id=STR, key=STR, **{"count?": INT}),
    "Purchase": obj(good_id=STR, count=INT, coins_spent=INT, balance=INT, owned=INT, ts=INT, replay=BOOL),
    "Inventory": obj(user_id=STR, items={"type": "object", "additionalProperties": INT}),
    "Statement": STATEMENT,
    "WithdrawalRequest": obj(diamonds=INT, key=STR, **{"method?": {"enum": ["paypal", "bank"]}}),
    "Withdrawal": WITHDRAWAL,
    "WithdrawalList": obj(withdrawals=array(WITHDRAWAL)),
    "Approval": obj(**{"outcome?": {"enum": ["succeed", "fail"]},
                       "deliveries?": {"type": "integer", "minimum": 1, "maximum": 5}}),
    "Rejection": obj(reason=STR),
    "PayoutEvent": obj(type={"enum": ["payout.paid", "payout.failed"]},
                       data=obj(payout_id=STR, withdrawal_id=STR, **{"amount?": INT, "currency?": STR, "reason?": STR})),
    "PayoutResult": obj(withdrawal_id=STR, status=STR, replay=BOOL),
    "Reward": obj(coins=INT, reason=STR, key=STR),
    "Adjustment": obj(unit={"enum": ["coins", "diamonds"]}, delta=INT, reason=STR, key=STR),
    "Grant": obj(user_id=STR, kind={"enum": ["reward", "adjustment"]}, unit={"enum": ["coins", "diamonds"]},
                 delta=INT, balance=INT, replay=BOOL),
    "Reversal": obj(**{"deliveries?": {"type": "integer", "minimum": 1, "maximum": 5},
                       "amount?": {"type": "integer", "minimum": 1}}),
    "ReversalStarted": obj(reversal_id=STR, order_id=STR, kind={"enum": ["refund", "chargeback"]}, amount=INT),
}


