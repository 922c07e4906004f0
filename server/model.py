"""A small pure reference model of the economy: the test oracle, and the audit's arithmetic.

It holds what the Redis scripts hold (coins, diamonds, held diamonds, locks, orders,
idempotency records, open rooms, inventories, withdrawals, spending) in plain dicts and applies
the same rules in the same order with no concurrency, so a test can run the same operations
against the real server and this model and compare every result and balance. Spending caps
are counted in one window: a model run is assumed not to cross a UTC midnight.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from server.errors import (
    AccountLocked, IdempotencyConflict, InsufficientFunds, OrderState, RoomClosed, SpendingLimit, UnknownOrder,
    UnknownWithdrawal, WithdrawalLimit, WithdrawalState,
)

__all__ = ["EconomyModel"]


def _ints() -> defaultdict[str, int]:
    return defaultdict(int)


@dataclasses.dataclass
class _Order:
    buyer: str
    coins: int  # bundle coins + bundle bonus + campaign bonus
    first_bonus: int
    status: str = "pending"
    payment: str | None = None
    credited: int = 0
    reversal: str | None = None


@dataclasses.dataclass
class _Withdrawal:
    creator: str
    diamonds: int
    fingerprint: str
    status: str = "pending"
    payout: str = ""


@dataclasses.dataclass
class EconomyModel:
    spend_cap: int = 10**12  # per window, the smaller of the day and week caps
    coins: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    diamonds: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    diamonds_held: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    spent_in_window: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    withdrawn_in_window: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    inventory: defaultdict[tuple[str, str], int] = dataclasses.field(default_factory=lambda: defaultdict(int))
    locked: set[str] = dataclasses.field(default_factory=set)
    first_recharged: set[str] = dataclasses.field(default_factory=set)
    open_rooms: set[str] = dataclasses.field(default_factory=set)
    orders: dict[str, _Order] = dataclasses.field(default_factory=dict)
    withdrawals: dict[str, _Withdrawal] = dataclasses.field(default_factory=dict)
    idempotency: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = dataclasses.field(default_factory=dict)
    coins_credited: int = 0
    coins_adjusted: int = 0
    coins_reversed: int = 0
    coins_spent: int = 0
    diamonds_credited: int = 0
    diamonds_adjusted: int = 0
    diamonds_paid_out: int = 0

    def open_room(self, creator: str) -> None:
        self.open_rooms.add(creator)

    def close_room(self, creator: str) -> None:
        self.open_rooms.discard(creator)

    # --- orders -------------------------------------------------------------------------------

    def create_order(self, order_id: str, coins: int, first_bonus: int = 0) -> None:
        """An order crediting `coins` (bundle, its bonus, a campaign bonus) when paid, plus
        `first_bonus` if it is its buyer's first paid recharge."""
        self.orders[order_id] = _Order(order_id.split(".")[0], coins, first_bonus)

    def pay_order(self, order_id: str, payment_id: str) -> int:
        """Credit an order once; returns the coins it credited (the same again on a replay)."""
        order = self._order(order_id)
        if order.status == "paid" and order.payment == payment_id:
            return order.credited
        if order.status not in ("pending", "failed"):
            raise OrderState()
        order.status, order.payment, order.credited = "paid", payment_id, order.coins
        if order.buyer not in self.first_recharged:
            self.first_recharged.add(order.buyer)
            order.credited += order.first_bonus
        self._credit_coins(order.buyer, order.credited)
        self.coins_credited += order.credited
        return order.credited

    def reverse_order(self, order_id: str, reversal_id: str, payment_id: str) -> tuple[int, bool]:
        """Refund or chargeback: take the order's coins back once; returns (balance, locked)."""
        order = self._order(order_id)
        if order.status == "reversed":
            if order.reversal != reversal_id:
                raise OrderState()
            return self.coins[order.buyer], order.buyer in self.locked
        if order.status != "paid" or order.payment != payment_id:
            raise OrderState()
        order.status, order.reversal = "reversed", reversal_id
        self.coins[order.buyer] -= order.credited
        self.coins_reversed += order.credited
        if self.coins[order.buyer] < 0:
            self.locked.add(order.buyer)
        return self.coins[order.buyer], order.buyer in self.locked

    def _order(self, order_id: str) -> _Order:
        if order_id not in self.orders:
            raise UnknownOrder()
        return self.orders[order_id]

    def _credit_coins(self, user: str, coins: int) -> None:
        self.coins[user] += coins
        if self.coins[user] >= 0:
            self.locked.discard(user)

    # --- spending ----------------------------------------------------------------------------

    def _replayed(self, user: str, key: str, fingerprint: str) -> tuple[int, ...] | None:
        if (user, key) in self.idempotency:
            seen_fp, result = self.idempotency[(user, key)]
            if seen_fp != fingerprint:
                raise IdempotencyConflict()
            return result
        return None

    def _spend(self, user: str, coins: int) -> None:
        """lib_limits' check_spending, then the debit."""
        if user in self.locked:
            raise AccountLocked()
        if self.coins[user] < coins:
            raise InsufficientFunds()
        if self.spent_in_window[user] + coins > self.spend_cap:
            raise SpendingLimit()
        self.spent_in_window[user] += coins
        self.coins[user] -= coins
        self.coins_spent += coins

    def send_gift(self, sender: str, creator: str, key: str, fingerprint: str, coins: int, diamonds: int
                  ) -> tuple[int, ...]:
        """Returns (sender's balance, creator's diamonds) as the first application left them."""
        if (result := self._replayed(sender, key, fingerprint)) is not None:
            return result
        if creator not in self.open_rooms:
            raise RoomClosed()
        self._spend(sender, coins)
        self.diamonds[creator] += diamonds
        self.diamonds_credited += diamonds
        result = (self.coins[sender], self.diamonds[creator])
        self.idempotency[(sender, key)] = (fingerprint, result)
        return result

    def buy_goods(self, buyer: str, key: str, good: str, count: int, coins: int) -> tuple[int, ...]:
        """Returns (balance, owned) as the first application left them."""
        if (result := self._replayed(buyer, "goods:" + key, f"{good}|{count}")) is not None:
            return result
        self._spend(buyer, coins)
        self.inventory[(buyer, good)] += count
        result = (self.coins[buyer], self.inventory[(buyer, good)])
        self.idempotency[(buyer, "goods:" + key)] = (f"{good}|{count}", result)
        return result

    # --- withdrawals -------------------------------------------------------------------------

    def request_withdrawal(self, creator: str, withdrawal_id: str, diamonds: int, method: str, limit: int
                           ) -> tuple[int, int]:
        """Hold diamonds; returns (diamonds, held). `limit`: the smaller of the day/week limits."""
        fingerprint = f"{diamonds}|{method}"
        if (seen := self.withdrawals.get(withdrawal_id)) is not None:
            if seen.fingerprint != fingerprint:
                raise IdempotencyConflict()
            return self.diamonds[creator], self.diamonds_held[creator]
        if self.diamonds[creator] < diamonds:
            raise InsufficientFunds()
        if self.withdrawn_in_window[creator] + diamonds > limit:
            raise WithdrawalLimit()
        self.withdrawn_in_window[creator] += diamonds
        self.diamonds[creator] -= diamonds
        self.diamonds_held[creator] += diamonds
        self.withdrawals[withdrawal_id] = _Withdrawal(creator, diamonds, fingerprint)
        return self.diamonds[creator], self.diamonds_held[creator]

    def settle_withdrawal(self, withdrawal_id: str, step: str, payout_id: str = "") -> tuple[str, bool]:
        """settle_withdrawal.lua's state machine; returns (status, replay)."""
        if withdrawal_id not in self.withdrawals:
            raise UnknownWithdrawal()
        w = self.withdrawals[withdrawal_id]
        if (w.status == step or (step == "failed" and w.status == "paid")) and w.payout == payout_id:
            return w.status, True
        allowed = {
            "processing": w.status == "pending" and payout_id != "",
            "paid": w.status == "processing" and w.payout == payout_id,
            "failed": (w.status == "pending" and payout_id == "")
            or (w.status == "processing" and w.payout == payout_id),
        }
        if not allowed[step]:
            raise WithdrawalState()
        if step == "processing":
            w.payout = payout_id
        elif step == "paid":
            self.diamonds_held[w.creator] -= w.diamonds
            self.diamonds_paid_out += w.diamonds
        else:
            self.diamonds_held[w.creator] -= w.diamonds
            self.diamonds[w.creator] += w.diamonds
        w.status = step
        return step, False

    # --- admin -------------------------------------------------------------------------------

    def grant(self, user: str, kind: str, unit: str, delta: int, key: str, fingerprint: str) -> int:
        """A reward or an adjustment, once per key; returns the unit's balance."""
        if (result := self._replayed(user, "grant:" + key, fingerprint)) is not None:
            return result[0]
        balances = self.coins if unit == "coins" else self.diamonds
        if delta < 0 and balances[user] + delta < 0:
            raise InsufficientFunds()
        if unit == "coins":
            self._credit_coins(user, delta)
            if kind == "reward":
                self.coins_credited += delta
            else:
                self.coins_adjusted += delta
        else:
            self.diamonds[user] += delta
            self.diamonds_adjusted += delta
        self.idempotency[(user, "grant:" + key)] = (fingerprint, (balances[user],))
        return balances[user]

    def conserved(self) -> bool:
        """The audit's two laws (see server/audit.py)."""
        coins_in = self.coins_credited + self.coins_adjusted - self.coins_reversed
        diamonds_in = self.diamonds_credited + self.diamonds_adjusted
        return (coins_in == sum(self.coins.values()) + self.coins_spent
                and diamonds_in == sum(self.diamonds.values()) + sum(self.diamonds_held.values())
                + self.diamonds_paid_out)
