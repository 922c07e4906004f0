"""A small pure reference model of the economy: the test oracle, and the audit's arithmetic.

It holds what the Redis scripts hold (coins, diamonds, orders, idempotency records, open
rooms) in plain dicts and applies the same rules with no concurrency, so a test can run the
same operations against the real server and this model and compare every result and balance.
"""

from __future__ import annotations

import dataclasses

from server.catalog import Bundle
from server.errors import IdempotencyConflict, InsufficientFunds, OrderState, RoomClosed, UnknownOrder

__all__ = ["EconomyModel"]


@dataclasses.dataclass
class EconomyModel:
    coins: dict[str, int] = dataclasses.field(default_factory=dict)
    diamonds: dict[str, int] = dataclasses.field(default_factory=dict)
    open_rooms: set[str] = dataclasses.field(default_factory=set)
    orders: dict[str, tuple[int, str | None]] = dataclasses.field(default_factory=dict)  # id -> (coins, payment)
    idempotency: dict[tuple[str, str], tuple[str, tuple[int, int]]] = dataclasses.field(default_factory=dict)
    coins_credited: int = 0
    coins_spent: int = 0
    diamonds_credited: int = 0

    def open_room(self, creator: str) -> None:
        self.open_rooms.add(creator)

    def close_room(self, creator: str) -> None:
        self.open_rooms.discard(creator)

    def create_order(self, order_id: str, bundle: Bundle) -> None:
        self.orders[order_id] = (bundle.total_coins, None)

    def pay_order(self, order_id: str, payment_id: str) -> int:
        """Credit an order once; returns the coins this delivery credited (0 on a replay)."""
        if order_id not in self.orders:
            raise UnknownOrder()
        coins, paid_by = self.orders[order_id]
        if paid_by is not None:
            if paid_by != payment_id:
                raise OrderState()
            return 0
        self.orders[order_id] = (coins, payment_id)
        self.coins[order_id.split(".")[0]] = self.coins.get(order_id.split(".")[0], 0) + coins
        self.coins_credited += coins
        return coins

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
        self.coins[sender] -= coins
        self.diamonds[creator] = self.diamonds.get(creator, 0) + diamonds
        self.coins_spent += coins
        self.diamonds_credited += diamonds
        result = (self.coins[sender], self.diamonds[creator])
        self.idempotency[(sender, key)] = (fingerprint, result)
        return result

    def conserved(self) -> bool:
        """Coins credited = coins held + coins spent; diamonds credited = diamonds held."""
        return (self.coins_credited == sum(self.coins.values()) + self.coins_spent
                and self.diamonds_credited == sum(self.diamonds.values()))
