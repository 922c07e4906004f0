"""Audit: replay every ledger and check it against the balances and the conservation laws.

For every user, the sum of ledger deltas per unit must equal the wallet balance, and the last
entry's running balance must equal it too. Across all users, coins credited (recharges,
bonuses) must equal coins held plus coins spent on gifts, and diamonds credited must equal
diamonds held. Every gift is matched by its ref: each `gift_sent` has exactly one
`gift_received`, unless it is still in flight in its sender's outbox (Redis Cluster: debited,
credit not yet confirmed; counted in `gifts_in_flight`, not a problem), and nothing is received
that was not sent. Reads only; run it on a quiet store (a gift that moves while the audit reads
may look inconsistent); `python -m server audit` prints what disagrees and exits non-zero.

On Redis Cluster the client's SCAN visits every primary in turn (redis-py keeps a cursor per
node); every other read is a single-key command routed to the key's node.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

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
    gifts_in_flight: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


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


async def audit(client: aioredis.Redis | RedisCluster) -> AuditReport:
    report = AuditReport()
    users: set[str] = set()
    async for key in client.scan_iter(match="wallet:{u:*}", count=500):
        users.add(_user_of(key, "wallet:"))
    async for key in client.scan_iter(match="ledger:{u:*}", count=500):
        users.add(_user_of(key, "ledger:"))
    in_flight: set[str] = set()
    async for key in client.scan_iter(match="outbox:{u:*}", count=500):
        in_flight.update(msgpack.unpackb(entry)["ref"] for entry in await client.hvals(key))
    report.gifts_in_flight = len(in_flight)
    gifts = _Gifts()
    for user in sorted(users):
        report.users += 1
        await _audit_user(client, user, report, gifts)
    report.problems.extend(gifts.problems(in_flight))
    if report.coins_credited != report.coins_held + report.coins_spent:
        report.problems.append(
            f"coins not conserved: credited {report.coins_credited} != held {report.coins_held}"
            f" + spent {report.coins_spent}")
    if report.diamonds_credited != report.diamonds_held:
        report.problems.append(
            f"diamonds not conserved: credited {report.diamonds_credited} != held {report.diamonds_held}")
    return report


async def _audit_user(client: aioredis.Redis | RedisCluster, user: str, report: AuditReport, gifts: _Gifts) -> None:
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
                gifts.sent[fields[b"ref"].decode()] = -delta
            elif kind == "gift_received":
                report.diamonds_credited += delta
                gifts.received[fields[b"ref"].decode()] += 1
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
