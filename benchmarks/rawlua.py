"""The raw capacity of `server/lua/send_gift.lua`: EVALSHA pipelined straight at Valkey.

No giftcast in the path: a hand-rolled RESP client (commands pre-encoded except the
idempotency key, replies parsed by hiredis) keeps `depth` commands in flight on each of
`connections` sockets, for `seconds`. Same script, same keys (server/keys.py), same arguments
as giftcast sends for a one-rose gift, so every call debits a sender and credits the creator
exactly as a real gift does (the audit still balances).

Run in its own process on the generator's cores: `measure(...)` returns ok replies per second,
error replies by code, and this process's own CPU share (to tell a saturated client apart).
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections import Counter
from typing import Any

import hiredis
import redis

from server import keys
from server.catalog import MAX_COINS
from server.leaderboards import WEEKLY_TTL_S, iso_week
from server.scripts import script_source

__all__ = ["measure"]

IDEMPOTENCY_TTL_S = 48 * 3600  # giftcast's default
HISTORY_LEN = 10_000  # giftcast's default
STREAK_WINDOW_MS = 3_000  # giftcast's default; the benchmark targets run with the gift rate off (0)


def _resp(args: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Pipeline(asyncio.Protocol):
    def __init__(self, owner: _Driver, sender: str) -> None:
        self.owner = owner
        self.sender = sender
        self.reader = hiredis.Reader()
        self.n = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send(self.owner.depth)

    def send(self, count: int) -> None:
        if not self.owner.running or count <= 0:
            return
        chunks = []
        for _ in range(count):
            self.n += 1
            chunks.append(self.owner.command(self.sender, f"raw.{os.getpid()}.{id(self) % 10**6}.{self.n}"))
        assert self.transport is not None
        self.transport.write(b"".join(chunks))

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        done = 0
        while (reply := self.reader.gets()) is not False:
            done += 1
            self.owner.replied(reply)
        self.send(done)


class _Driver:
    def __init__(self, sha: str, creator: str, depth: int) -> None:
        self.sha = sha.encode()
        self.creator = creator
        self.depth = depth
        self.running = True
        self.ok = 0
        self.total_ok = 0
        self.errors: Counter[str] = Counter()
        self.measuring = False

    def command(self, sender: str, key: str) -> bytes:
        c = self.creator
        args = [b"EVALSHA", self.sha, b"14",
                *(k.encode() for k in (keys.wallet(sender), keys.ledger(sender), keys.idempotency(sender, key),
                                       keys.wallet(c), keys.ledger(c), keys.live(c), keys.live_top(c),
                                       keys.live_history(c), keys.limits(sender), keys.gift_rate(sender),
                                       keys.live_streaks(c), keys.live_streak_ends(c),
                                       keys.top_week(c, iso_week(time.time())), keys.top_all(c))),
                # no spending cap (MAX_COINS): the script still checks and counts the spending
                *(str(a).encode() for a in (sender, c, "rose", 1, 1, 1, 10_000, f"{c}|rose|1",
                                            IDEMPOTENCY_TTL_S, HISTORY_LEN, keys.room_channel(c), key,
                                            MAX_COINS, MAX_COINS, 1, 0, 1, 1, STREAK_WINDOW_MS, WEEKLY_TTL_S))]
        return _resp(args)

    def replied(self, reply: Any) -> None:
        if isinstance(reply, list) and reply and reply[0] == b"ok":
            if self.measuring:
                self.ok += 1
            self.total_ok += 1
        else:
            code = reply[1].decode() if isinstance(reply, list) and len(reply) > 1 else repr(reply)[:80]
            self.errors[code] += 1


async def _run(url: str, senders: list[str], creator: str, connections: int, depth: int,
               warmup_s: float, seconds: float) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    sha = client.script_load(script_source("send_gift"))
    client.close()
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    driver = _Driver(sha, creator, depth)
    loop = asyncio.get_running_loop()
    transports = []
    for i in range(connections):
        transport, _ = await loop.create_connection(
            lambda i=i: _Pipeline(driver, senders[i % len(senders)]), host, int(port.split("/")[0]))
        transports.append(transport)
    await asyncio.sleep(warmup_s)
    driver.measuring = True
    t0, c0 = time.monotonic(), _cpu()
    await asyncio.sleep(seconds)
    driver.measuring = False
    wall, cpu = time.monotonic() - t0, _cpu() - c0
    driver.running = False
    await asyncio.sleep(0.2)  # replies of what is still in flight (counted in total_ok)
    for transport in transports:
        transport.close()
    return {"ok_per_s": driver.ok / wall, "errors": dict(driver.errors), "client_cpu": cpu / wall,
            "total_ok": driver.total_ok, "connections": connections, "depth": depth}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(url: str, senders: list[str], creator: str, *, connections: int, depth: int,
            warmup_s: float, seconds: float, cpus: list[int]) -> dict[str, Any]:
    """Entry point for a spawned process (multiprocessing): pin, run, return the numbers."""
    import uvloop

    if cpus:
        os.sched_setaffinity(0, cpus)
    return uvloop.run(_run(url, senders, creator, connections, depth, warmup_s, seconds))
