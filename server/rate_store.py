"""RateBook: the rate table a process prices gifts and withdrawals with: the catalog's versions
plus the versions admins published at run time (`publish_rate.lua`, hash `keys.PUBLISHED_RATES`).

Why a published version applies to later gifts and withdrawals only, in every process: a process
re-reads the published versions when its copy is older than `refresh_s` (in `table`, before it
prices anything), and a version may only take effect at least `refresh_s` plus a second after it
is published (the script checks, on Redis' clock). So whenever a process prices at or after the
moment a version takes effect, its copy was read after the version was published and contains
it; before that moment every process prices with the version before it. The second covers
clocks of processes and Redis that differ by less than that. Published versions are never
edited or removed (ledger entries and withdrawals refer to them by number).
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from server import keys
from server.errors import ConfigError
from server.rates import Rate, RateChange, RateTable
from server.scripts import Scripts
from server.wallet_store import reply_or_raise

__all__ = ["RateBook", "LEAD_MARGIN_MS"]

LEAD_MARGIN_MS = 1_000  # beyond refresh_s: room for clocks that differ slightly


class RateBook:
    def __init__(self, client: aioredis.Redis, scripts: Scripts, catalog_rates: RateTable, *, refresh_s: float):
        self._client = client
        self._scripts = scripts
        self._catalog_rates = catalog_rates
        self._table = catalog_rates
        self._refresh_s = refresh_s
        self._read_at = float("-inf")  # monotonic time the published versions were last read
        self._reading = asyncio.Lock()

    @property
    def lead_ms(self) -> int:
        """How far ahead of now a version may be published at the earliest."""
        return int(self._refresh_s * 1000) + LEAD_MARGIN_MS

    async def table(self) -> RateTable:
        """The table to price with now: re-read first if the copy is older than `refresh_s`."""
        if time.monotonic() - self._read_at >= self._refresh_s:
            async with self._reading:  # one read for every caller that found the copy old
                if time.monotonic() - self._read_at >= self._refresh_s:
                    await self.reload()
        return self._table

    async def reload(self) -> None:
        """Read the published versions; ConfigError if they contradict the catalog's (an
        operator gave a catalog version a number already published: see rates.with_published)."""
        started = time.monotonic()
        rows = await self._client.hgetall(keys.PUBLISHED_RATES)
        published = []
        for field, value in rows.items():
            region, _, version = field.decode().partition(":v")
            if version:
                from_ms, rate_bp, cash, _ = value.decode().split(":", 3)
                published.append(Rate(region, int(version), int(from_ms), int(rate_bp), int(cash),
                                      self._catalog_rates.latest(region).currency))
        try:
            self._table = self._catalog_rates.with_published(published)
        except ValueError as exc:
            raise ConfigError(f"published rates: {exc}") from None
        self._read_at = started

    async def publish(self, change: RateChange, *, admin: str) -> Rate:
        """Publish `change` as the region's next version; returns it."""
        latest = self._catalog_rates.latest(change.region)
        reply = await self._scripts.publish_rate(
            keys=[keys.PUBLISHED_RATES],
            args=[change.region, "" if change.from_ms is None else change.from_ms, change.rate_bp,
                  change.cash_per_1000_diamonds, admin, latest.version,
                  "" if latest.from_ms is None else latest.from_ms, self.lead_ms],
        )
        version, from_ms = reply_or_raise(reply)
        await self.reload()
        return Rate(change.region, int(version), int(from_ms), change.rate_bp, change.cash_per_1000_diamonds,
                    latest.currency)
