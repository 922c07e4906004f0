"""A small pure reference model of the economy: the test oracle, and the audit's arithmetic.

It holds what the Redis scripts hold (coins, diamonds, orders, idempotency records, open
rooms, every user's ledger) in plain dicts and applies the same rules with no concurrency, so a
test can run the same operations against the real server and this model and compare every
result, balance and ledger entry (tests/test_model_based.py).
"""

from __future__ import annotations

import dataclasses

from server.catalog import Bundle
from server.errors import IdempotencyConflict, InsufficientFunds, OrderState, RoomClosed, UnknownOrder

__all__ = ["EconomyModel", "LedgerEntry", "ModelOrder"]


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What the model expects of one ledger entry (the server's entries carry more fields)."""

    kind: str
    unit: str
    delta: int
    balance: int


@dataclasses.dataclass(slots=True)
class ModelOrder:
    coins: int
    bonus_coins: int
    status: str = "pending"  # pending | paid | failed
    payment_id: str | None = None


@dataclasses.dataclass
class EconomyModel:
    coins: dict[str, int] = dataclasses.field(default_factory=dict)
    diamonds: dict[str, int] = dataclasses.field(default_factory=dict)
    open_rooms: set[str] = dataclasses.field(default_factory=set)
    orders: dict[str, ModelOrder] = dataclasses.field(default_factory=dict)
    idempotency: dict[tuple[str, str], tuple[str, tuple[int, int]]] = dataclasses.field(default_factory=dict)
    ledger: dict[str, list[LedgerEntry]] = dataclasses.field(default_factory=dict)
    coins_credited: int = 0
    coins_spent: int = 0
    diamonds_credited: int = 0

    def open_room(self, creator: str) -> bool:
        """Returns whether the room's state changed."""
        changed = creator not in self.open_rooms
        self.open_rooms.add(creator)
        return changed

    def close_room(self, creator: str) -> bool:
        changed = creator in self.open_rooms
        self.open_rooms.discard(creator)
        return changed

    def create_order(self, order_id: str, bundle: Bundle) -> None:
        self.orders[order_id] = ModelOrder(bundle.coins, bundle.bonus_coins)

    def pay_order(self, order_id: str, payment_id: str) -> int:
        """Credit an order once; returns the coins this delivery credited (0 on a replay)."""
        order = self._order(order_id)
        if order.status == "paid":
            if order.payment_id != payment_id:
                raise OrderState()
            return 0
        order.status, order.payment_id = "paid", payment_id
        buyer = order_id.split(".")[0]
        self._move(buyer, "recharge", "coins", order.coins)
        if order.bonus_coins:
            self._move(buyer, "bonus", "coins", order.bonus_coins)
        self.coins_credited += order.coins + order.bonus_coins
        return order.coins + order.bonus_coins

    def fail_order(self, order_id: str) -> str:
        """A declined payment: a pending order fails; a paid one stays paid. Returns the status."""
        order = self._order(order_id)
        if order.status != "paid":
            order.status = "failed"
        return order.status

    def send_gift(self, sender: str, creator: str, key: str, fingerprint: str, coins: int, diamonds: int) -> tuple[int, int]:
        """Returns (sender's balance, creator's diamonds) as the first application left them."""
        if (sender, key) in self.idempotency:
            seen_fp, result = self.idempotency[(sender, key)]
            if seen_fp != fingerprint:
                raise IdempotencyConflict()
            return result
        if creator not in self.open_rooms:
            raise RoomClosed()
        if self.coins.get(sender, 0) < coins:
            raise InsufficientFunds()
        self._move(sender, "gift_sent", "coins", -coins)
        self._move(creator, "gift_received", "diamonds", diamonds)
        self.coins_spent += coins
        self.diamonds_credited += diamonds
        result = (self.coins[sender], self.diamonds[creator])
        self.idempotency[(sender, key)] = (fingerprint, result)
        return result

    def conserved(self) -> bool:
        """Coins credited = coins held + coins spent; diamonds credited = diamonds held."""
        return (self.coins_credited == sum(self.coins.values()) + self.coins_spent
                and self.diamonds_credited == sum(self.diamonds.values()))

    def _order(self, order_id: str) -> ModelOrder:
        if order_id not in self.orders:
            raise UnknownOrder()
        return self.orders[order_id]

    def _move(self, user: str, kind: str, unit: str, delta: int) -> None:
        balances = self.coins if unit == "coins" else self.diamonds
        balances[user] = balances.get(user, 0) + delta
        self.ledger.setdefault(user, []).append(LedgerEntry(kind, unit, delta, balances[user]))
