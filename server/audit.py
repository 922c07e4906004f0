"""Audit: replay every ledger and check it against the balances and the conservation laws.

Per user and unit (coins, diamonds, diamonds_held): the sum of ledger deltas equals the wallet
balance, and the last entry's running balance equals it too; every entry has a known kind in
a unit that kind may move; the two halves of a withdrawal hold or release cancel out; the
diamonds held equal the user's pending and processing withdrawals; each good owned equals the
goods bought; an account is locked exactly when its coins are negative, and the admins' index
of locked accounts (`locked_accounts.py`) lists exactly the locked ones. Every gift is matched
by its ref: each `gift_sent` has exactly one `gift_received`, unless it is still in flight in
its sender's outbox (Redis Cluster: debited, credit not yet confirmed; counted in
`gifts_in_flight`, not a problem), and nothing is received that was not sent.

Across all users:

    coins credited (recharge, bonus, reward) + coin adjustments - coins reversed (refund,
      chargeback) = coins held + coins spent (gift_sent, purchase)
    diamonds credited (gift_received) + diamond adjustments
      = diamonds held + diamonds held for withdrawals + diamonds paid out (payout)

Reads only; run it on a quiet store (a movement made while the audit reads may look
inconsistent); `python -m server audit` prints what disagrees and exits non-zero.

On Redis Cluster the client's SCAN visits every primary in turn (redis-py keeps a cursor per
node); every other read is a single-key command (or a pipeline of one user's keys) routed to
the key's node.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from server import keys

__all__ = ["AuditReport", "audit", "KIND_UNITS"]

UNITS = ("coins", "diamonds", "diamonds_held")
# Every ledger kind and the units it may move.
KIND_UNITS: dict[str, frozenset[str]] = {
    "recharge": frozenset({"coins"}), "bonus": frozenset({"coins"}), "reward": frozenset({"coins"}),
    "gift_sent": frozenset({"coins"}), "purchase": frozenset({"coins"}), "refund": frozenset({"coins"}),
    "chargeback": frozenset({"coins"}), "unlock": frozenset({"coins"}),
    "gift_received": frozenset({"diamonds"}), "payout": frozenset({"diamonds_held"}),
    "adjustment": frozenset({"coins", "diamonds"}),
    "withdrawal_hold": frozenset({"diamonds", "diamonds_held"}),
    "withdrawal_release": frozenset({"diamonds", "diamonds_held"}),
}
# Where each kind's deltas are counted in the report (kind, unit) -> (field, sign).
_TOTALS: dict[tuple[str, str], tuple[str, int]] = {
    ("recharge", "coins"): ("coins_credited", 1), ("bonus", "coins"): ("coins_credited", 1),
    ("reward", "coins"): ("coins_credited", 1), ("adjustment", "coins"): ("coins_adjusted", 1),
    ("refund", "coins"): ("coins_reversed", -1), ("chargeback", "coins"): ("coins_reversed", -1),
    ("gift_sent", "coins"): ("coins_spent", -1), ("purchase", "coins"): ("coins_spent", -1),
    ("gift_received", "diamonds"): ("diamonds_credited", 1), ("adjustment", "diamonds"): ("diamonds_adjusted", 1),
    ("payout", "diamonds_held"): ("diamonds_paid_out", -1),
}
_OPEN_WITHDRAWALS = (b"pending", b"processing")


@dataclasses.dataclass
class AuditReport:
    users: int = 0
    entries: int = 0
    coins_credited: int = 0
    coins_adjusted: int = 0
    coins_reversed: int = 0
    coins_held: int = 0
    coins_spent: int = 0
    diamonds_credited: int = 0
    diamonds_adjusted: int = 0
    diamonds_held: int = 0
    diamonds_in_withdrawal: int = 0
    diamonds_paid_out: int = 0
    gifts_in_flight: int = 0
    locked: set[str] = dataclasses.field(default_factory=set)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check_conservation(self) -> None:
        coins_in = self.coins_credited + self.coins_adjusted - self.coins_reversed
        if coins_in != self.coins_held + self.coins_spent:
            self.problems.append(
                f"coins not conserved: credited {self.coins_credited} + adjusted {self.coins_adjusted}"
                f" - reversed {self.coins_reversed} != held {self.coins_held} + spent {self.coins_spent}")
        diamonds_in = self.diamonds_credited + self.diamonds_adjusted
        if diamonds_in != self.diamonds_held + self.diamonds_in_withdrawal + self.diamonds_paid_out:
            self.problems.append(
                f"diamonds not conserved: credited {self.diamonds_credited} + adjusted {self.diamonds_adjusted}"
                f" != held {self.diamonds_held} + in withdrawal {self.diamonds_in_withdrawal}"
                f" + paid out {self.diamonds_paid_out}")


Client = aioredis.Redis | RedisCluster


def _user_of(key: bytes, prefix: str) -> str:
    return key.decode()[len(prefix) + len("{u:") : -1]


@dataclasses.dataclass
class _Gifts:
    """Gift refs seen on the ledgers: coins debited per sent ref, and receipts per ref."""

    sent: dict[str, int] = dataclasses.field(default_factory=dict)
    received: Counter[str] = dataclasses.field(default_factory=Counter)

    def problems(self, in_flight: set[str]) -> list[str]:
        found = [f"gift {ref}: {coins} coins debited but never credited"
                 for ref, coins in self.sent.items() if ref not in self.received and ref not in in_flight]
        found += [f"gift {ref}: credited {n} times" for ref, n in self.received.items() if n > 1]
        found += [f"gift {ref}: credited but never debited" for ref in self.received if ref not in self.sent]
        return found


async def audit(client: Client) -> AuditReport:
    report = AuditReport()
    users: set[str] = set()
    for prefix in ("wallet:", "ledger:", "inventory:", "withdrawals:"):
        async for key in client.scan_iter(match=prefix + "{u:*}", count=500):
            users.add(_user_of(key, prefix))
    in_flight: set[str] = set()
    async for key in client.scan_iter(match="outbox:{u:*}", count=500):
        in_flight.update(msgpack.unpackb(entry)["ref"] for entry in await client.hvals(key))
    report.gifts_in_flight = len(in_flight)
    gifts = _Gifts()
    for user in sorted(users):
        report.users += 1
        await _audit_user(client, user, report, gifts)
    report.problems.extend(gifts.problems(in_flight))
    indexed = {user.decode() for user in await client.zrange(keys.LOCKED_ACCOUNTS, 0, -1)}
    report.problems.extend(f"{user}: locked but not in the index of locked accounts"
                           for user in sorted(report.locked - indexed))
    report.problems.extend(f"{user}: in the index of locked accounts but not locked"
                           for user in sorted(indexed - report.locked))
    report.check_conservation()
    return report


async def _audit_user(client: Client, user: str, report: AuditReport, gifts: _Gifts) -> None:
    wallet = await client.hmget(keys.wallet(user), [*UNITS, "locked"])
    held = {unit: int(value or 0) for unit, value in zip(UNITS, wallet, strict=False)}
    summed: dict[str, int] = defaultdict(int)
    last_balance: dict[str, int] = {}
    internal: dict[str, int] = defaultdict(int)  # withdrawal hold/release halves, must cancel out
    bought: dict[str, int] = defaultdict(int)
    cursor = "-"
    while True:
        rows = await client.xrange(keys.ledger(user), min=cursor, max="+", count=1000)
        for entry_id, fields in rows:
            report.entries += 1
            unit, kind = fields[b"unit"].decode(), fields[b"kind"].decode()
            delta = int(fields[b"delta"])
            if unit not in KIND_UNITS.get(kind, ()):
                report.problems.append(f"{user}: entry {entry_id.decode()} has kind {kind!r} in unit {unit!r}")
                continue
            summed[unit] += delta
            last_balance[unit] = int(fields[b"balance"])
            if (kind, unit) in _TOTALS:
                field, sign = _TOTALS[(kind, unit)]
                setattr(report, field, getattr(report, field) + sign * delta)
            if kind in ("withdrawal_hold", "withdrawal_release"):
                internal[kind] += delta
            if kind == "purchase":
                bought[fields[b"good"].decode()] += int(fields[b"count"])
            elif kind == "gift_sent":
                gifts.sent[fields[b"ref"].decode()] = -delta
            elif kind == "gift_received":
                gifts.received[fields[b"ref"].decode()] += 1
        if len(rows) < 1000:
            break
        cursor = "(" + rows[-1][0].decode()
    report.coins_held += held["coins"]
    report.diamonds_held += held["diamonds"]
    report.diamonds_in_withdrawal += held["diamonds_held"]
    for unit, balance in held.items():
        if summed[unit] != balance:
            report.problems.append(f"{user}: {unit} balance {balance} but ledger sums to {summed[unit]}")
        if unit in last_balance and last_balance[unit] != balance:
            report.problems.append(f"{user}: {unit} balance {balance} but last ledger entry says {last_balance[unit]}")
    report.problems.extend(f"{user}: {kind} entries do not cancel out ({total})"
                           for kind, total in internal.items() if total)
    if wallet[3]:
        report.locked.add(user)
    if (held["coins"] < 0) != bool(wallet[3]):
        report.problems.append(f"{user}: coins {held['coins']} but locked is {wallet[3]!r}")
    await _audit_holdings(client, user, held["diamonds_held"], bought, report)


async def _audit_holdings(client: Client, user: str, diamonds_held: int, bought: dict[str, int],
                          report: AuditReport) -> None:
    """Held diamonds against open withdrawals; inventory against purchases."""
    ids = await client.zrange(keys.withdrawals(user), 0, -1)
    async with client.pipeline(transaction=False) as pipe:
        for wid in ids:
            pipe.hmget(keys.withdrawal(user, wid.decode()), ["status", "diamonds"])
        rows = await pipe.execute()
    open_total = sum(int(diamonds) for status, diamonds in rows if status in _OPEN_WITHDRAWALS)
    if open_total != diamonds_held:
        report.problems.append(f"{user}: diamonds_held {diamonds_held} but open withdrawals hold {open_total}")
    owned = {name.decode(): int(count) for name, count in (await client.hgetall(keys.inventory(user))).items()}
    if owned != dict(bought):
        report.problems.append(f"{user}: inventory {owned} but purchases add up to {dict(bought)}")
