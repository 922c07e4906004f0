"""Audit: replay every ledger and check it against the balances and the conservation laws.

For every user, the sum of ledger deltas per unit must equal the wallet balance, and the last
entry's running balance must equal it too. Across all users, coins credited (recharges,
bonuses) must equal coins held plus coins spent on gifts, and diamonds credited must equal
diamonds held. Reads only; `python -m server audit` prints what disagrees and exits non-zero.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import redis.asyncio as aioredis

from server import keys

__all__ = ["AuditReport", "audit"]

CREDIT_KINDS = frozenset({"recharge", "bonus"})
SPEND_KINDS = frozenset({"gift_sent"})


@dataclasses.dataclass
class AuditReport:
    users: int = 0
    entries: int = 0
    coins_credited: int = 0
    coins_held: int = 0
    coins_spent: int = 0
    diamonds_credited: int = 0
    diamonds_held: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _user_of(key: bytes, prefix: str) -> str:
    return key.decode()[len(prefix) + len("{u:") : -1]


async def audit(client: aioredis.Redis) -> AuditReport:
    report = AuditReport()
    users: set[str] = set()
    async for key in client.scan_iter(match="wallet:{u:*}", count=500):
        users.add(_user_of(key, "wallet:"))
    async for key in client.scan_iter(match="ledger:{u:*}", count=500):
        users.add(_user_of(key, "ledger:"))
    for user in sorted(users):
        report.users += 1
        await _audit_user(client, user, report)
    if report.coins_credited != report.coins_held + report.coins_spent:
        report.problems.append(
            f"coins not conserved: credited {report.coins_credited} != held {report.coins_held}"
            f" + spent {report.coins_spent}")
    if report.diamonds_credited != report.diamonds_held:
        report.problems.append(
            f"diamonds not conserved: credited {report.diamonds_credited} != held {report.diamonds_held}")
    return report


async def _audit_user(client: aioredis.Redis, user: str, report: AuditReport) -> None:
    coins, diamonds = await client.hmget(keys.wallet(user), ["coins", "diamonds"])
    held = {"coins": int(coins or 0), "diamonds": int(diamonds or 0)}
    summed: dict[str, int] = defaultdict(int)
    last_balance: dict[str, int] = {}
    cursor = "-"
    while True:
        rows = await client.xrange(keys.ledger(user), min=cursor, max="+", count=1000)
        for _entry_id, fields in rows:
            report.entries += 1
            unit, kind = fields[b"unit"].decode(), fields[b"kind"].decode()
            delta = int(fields[b"delta"])
            summed[unit] += delta
            last_balance[unit] = int(fields[b"balance"])
            if kind in CREDIT_KINDS:
                report.coins_credited += delta
            elif kind in SPEND_KINDS:
                report.coins_spent -= delta
            elif kind == "gift_received":
                report.diamonds_credited += delta
        if len(rows) < 1000:
            break
        cursor = "(" + rows[-1][0].decode()
    report.coins_held += held["coins"]
    report.diamonds_held += held["diamonds"]
    for unit, balance in held.items():
        if summed[unit] != balance:
            report.problems.append(f"{user}: {unit} balance {balance} but ledger sums to {summed[unit]}")
        if unit in last_balance and last_balance[unit] != balance:
            report.problems.append(f"{user}: {unit} balance {balance} but last ledger entry says {last_balance[unit]}")
