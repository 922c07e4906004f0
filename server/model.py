"""A small pure reference model of the economy: the test oracle, and the audit's arithmetic.

It holds what the Redis scripts hold (coins, diamonds, held diamonds, locks, orders,
idempotency records, open rooms, inventories, withdrawals, spending, every user's ledger) in
plain dicts and applies the same rules in the same order with no concurrency, so a test can run
the same operations against the real server and this model and compare every result, balance
and ledger entry (tests/test_model_based.py, tests/test_audit.py). Spending caps are counted in
one window: a model run is assumed not to cross a UTC midnight.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from server.catalog import Bundle
from server.errors import (
    AccountLocked, IdempotencyConflict, InsufficientFunds, InvalidField, OrderState, RoomClosed, SpendingLimit, UnknownOrder,
    UnknownWithdrawal, WithdrawalLimit, WithdrawalState,
)
from server.promotions import OrderPromotion

__all__ = ["EconomyModel", "LedgerEntry", "ModelOrder"]

NO_PROMOTION = OrderPromotion()


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What the model expects of one ledger entry (the server's entries carry more fields)."""

    kind: str
    unit: str
    delta: int
    balance: int


@dataclasses.dataclass(slots=True)
class ModelOrder:
    buyer: str
    credits: tuple[tuple[str, int], ...]  # (kind, coins) credited when paid: recharge, then bonuses
    first_bonus: int  # credited too if it is the buyer's first paid recharge
    price: int  # minor units
    status: str = "pending"  # pending | paid | failed | refunded | charged_back
    payment_id: str | None = None
    credited: int = 0
    reversed_amount: int = 0  # of the price, over every reversal so far
    reversed_coins: int = 0
    reversals: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # id -> (amount, coins)


@dataclasses.dataclass(slots=True)
class ModelWithdrawal:
    creator: str
    diamonds: int
    fingerprint: str
    status: str = "pending"
    payout: str = ""


def _ints() -> defaultdict[str, int]:
    return defaultdict(int)


@dataclasses.dataclass
class EconomyModel:
    spend_cap: int = 10**12  # coins per window: the smaller of the day and week caps (default: none)
    coins: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    diamonds: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    diamonds_held: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    spent_in_window: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    withdrawn_in_window: defaultdict[str, int] = dataclasses.field(default_factory=_ints)
    inventory: defaultdict[tuple[str, str], int] = dataclasses.field(default_factory=lambda: defaultdict(int))
    locked: set[str] = dataclasses.field(default_factory=set)
    first_recharged: set[str] = dataclasses.field(default_factory=set)
    open_rooms: set[str] = dataclasses.field(default_factory=set)
    orders: dict[str, ModelOrder] = dataclasses.field(default_factory=dict)
    withdrawals: dict[str, ModelWithdrawal] = dataclasses.field(default_factory=dict)
    idempotency: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = dataclasses.field(default_factory=dict)
    ledger: dict[str, list[LedgerEntry]] = dataclasses.field(default_factory=dict)
    coins_credited: int = 0
    coins_adjusted: int = 0
    coins_reversed: int = 0
    coins_spent: int = 0
    diamonds_credited: int = 0
    diamonds_adjusted: int = 0
    diamonds_paid_out: int = 0

    def open_room(self, creator: str) -> bool:
        """Returns whether the room's state changed."""
        changed = creator not in self.open_rooms
        self.open_rooms.add(creator)
        return changed

    def close_room(self, creator: str) -> bool:
        changed = creator in self.open_rooms
        self.open_rooms.discard(creator)
        return changed

    # --- orders -------------------------------------------------------------------------------

    def create_order(self, order_id: str, bundle: Bundle, price: int, promotion: OrderPromotion = NO_PROMOTION
                     ) -> None:
        """An order for `bundle` at `price` with the campaigns it recorded at creation."""
        credits = (("recharge", bundle.coins), ("bonus", bundle.bonus_coins), ("bonus", promotion.bonus))
        self.orders[order_id] = ModelOrder(order_id.split(".")[0], credits, promotion.first_bonus, price)

    def pay_order(self, order_id: str, payment_id: str) -> int:
        """Credit an order once; returns the coins this delivery credited (0 on a replay)."""
        order = self._order(order_id)
        if order.status == "paid" and order.payment_id == payment_id:
            return 0
        if order.status not in ("pending", "failed"):
            raise OrderState()
        order.status, order.payment_id = "paid", payment_id
        credits = list(order.credits)
        if order.buyer not in self.first_recharged:
            self.first_recharged.add(order.buyer)
            credits.append(("bonus", order.first_bonus))
        for kind, coins in credits:
            if coins > 0:
                self._move(order.buyer, kind, "coins", coins)
                order.credited += coins
        self._unlock_if_settled(order.buyer)
        self.coins_credited += order.credited
        return order.credited

    def fail_order(self, order_id: str) -> str:
        """A declined payment: a pending order fails; a paid one stays paid. Returns the status."""
        order = self._order(order_id)
        if order.status == "pending":
            order.status = "failed"
        return order.status

    def reverse_order(self, order_id: str, kind: str, reversal_id: str, payment_id: str, amount: int
                      ) -> tuple[int, int, bool]:
        """Refund or chargeback of `amount` of the price: take that share of the order's coins
        back, once per reversal id; returns (balance, coins removed, locked)."""
        order = self._order(order_id)
        if reversal_id in order.reversals:
            seen_amount, removed = order.reversals[reversal_id]
            if seen_amount != amount:
                raise InvalidField()
            return self.coins[order.buyer], removed, order.buyer in self.locked
        if order.status != "paid" or order.payment_id != payment_id:
            raise OrderState()
        if not 1 <= amount <= order.price - order.reversed_amount:
            raise InvalidField()
        order.reversed_amount += amount
        reversed_coins = -(-order.credited * order.reversed_amount // order.price)  # ceil
        removed, order.reversed_coins = reversed_coins - order.reversed_coins, reversed_coins
        order.reversals[reversal_id] = (amount, removed)
        if order.reversed_amount == order.price:
            order.status = "refunded" if kind == "refund" else "charged_back"
        self._move(order.buyer, kind, "coins", -removed)
        self.coins_reversed += removed
        if self.coins[order.buyer] < 0:
            self.locked.add(order.buyer)
        return self.coins[order.buyer], removed, order.buyer in self.locked

    def _order(self, order_id: str) -> ModelOrder:
        if order_id not in self.orders:
            raise UnknownOrder()
        return self.orders[order_id]

    def _unlock_if_settled(self, user: str) -> None:
        if user in self.locked and self.coins[user] >= 0:
            self.locked.discard(user)
            self._move(user, "unlock", "coins", 0)

    # --- spending ----------------------------------------------------------------------------

    def _replayed(self, user: str, key: str, fingerprint: str) -> tuple[int, ...] | None:
        if (user, key) in self.idempotency:
            seen_fp, result = self.idempotency[(user, key)]
            if seen_fp != fingerprint:
                raise IdempotencyConflict()
            return result
        return None

    def _check_spending(self, user: str, coins: int) -> None:
        """lib_limits' check_spending."""
        if user in self.locked:
            raise AccountLocked()
        if self.coins[user] < coins:
            raise InsufficientFunds()
        if self.spent_in_window[user] + coins > self.spend_cap:
            raise SpendingLimit()

    def send_gift(self, sender: str, creator: str, key: str, fingerprint: str, coins: int, diamonds: int
                  ) -> tuple[int, ...]:
        """Returns (sender's balance, creator's diamonds) as the first application left them."""
        if (result := self._replayed(sender, key, fingerprint)) is not None:
            return result
        if creator not in self.open_rooms:
            raise RoomClosed()
        self._check_spending(sender, coins)
        self.spent_in_window[sender] += coins
        self._move(sender, "gift_sent", "coins", -coins)
        self._move(creator, "gift_received", "diamonds", diamonds)
        self.coins_spent += coins
        self.diamonds_credited += diamonds
        result = (self.coins[sender], self.diamonds[creator])
        self.idempotency[(sender, key)] = (fingerprint, result)
        return result

    def buy_goods(self, buyer: str, key: str, good: str, count: int, coins: int) -> tuple[int, ...]:
        """Returns (balance, owned) as the first application left them."""
        fingerprint = f"{good}|{count}"
        if (result := self._replayed(buyer, "goods:" + key, fingerprint)) is not None:
            return result
        self._check_spending(buyer, coins)
        self.spent_in_window[buyer] += coins
        self._move(buyer, "purchase", "coins", -coins)
        self.coins_spent += coins
        self.inventory[(buyer, good)] += count
        result = (self.coins[buyer], self.inventory[(buyer, good)])
        self.idempotency[(buyer, "goods:" + key)] = (fingerprint, result)
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
        self._move(creator, "withdrawal_hold", "diamonds", -diamonds)
        self._move(creator, "withdrawal_hold", "diamonds_held", diamonds)
        self.withdrawals[withdrawal_id] = ModelWithdrawal(creator, diamonds, fingerprint)
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
            self._move(w.creator, "payout", "diamonds_held", -w.diamonds)
            self.diamonds_paid_out += w.diamonds
        else:
            self._move(w.creator, "withdrawal_release", "diamonds_held", -w.diamonds)
            self._move(w.creator, "withdrawal_release", "diamonds", w.diamonds)
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
        self._move(user, kind, unit, delta)
        if unit == "diamonds":
            self.diamonds_adjusted += delta
        elif kind == "reward":
            self.coins_credited += delta
        else:
            self.coins_adjusted += delta
        if unit == "coins":
            self._unlock_if_settled(user)
        self.idempotency[(user, "grant:" + key)] = (fingerprint, (balances[user],))
        return balances[user]

    def conserved(self) -> bool:
        """The audit's two laws (see server/audit.py)."""
        coins_in = self.coins_credited + self.coins_adjusted - self.coins_reversed
        diamonds_in = self.diamonds_credited + self.diamonds_adjusted
        return (coins_in == sum(self.coins.values()) + self.coins_spent
                and diamonds_in == sum(self.diamonds.values()) + sum(self.diamonds_held.values())
                + self.diamonds_paid_out)

    def _move(self, user: str, kind: str, unit: str, delta: int) -> None:
        balances = {"coins": self.coins, "diamonds": self.diamonds, "diamonds_held": self.diamonds_held}[unit]
        balances[user] += delta
        self.ledger.setdefault(user, []).append(LedgerEntry(kind, unit, delta, balances[user]))
