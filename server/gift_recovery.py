"""GiftRecovery: completes, on Redis Cluster, the gifts a crash left debited but not credited.

Every hub process runs one (a background task started with the app): no extra process to deploy
or forget, recovery capacity grows with the hubs, and the work is small (one ZRANGEBYSCORE per
partition per period while nothing is in flight). Processes need no coordination beyond Redis:
every step they run is idempotent, so two of them finishing the same gift credit it once.

Each pass reads, per partition of `keys.gifts_in_flight`, the attempts that are due (their score,
start + recovery_s, has passed), runs `SplitGiftStore.finish(sender, key)` for each (credit and
complete if the gift is still in the sender's outbox; nothing if it completed or was never
debited: a debit is refused after start + recovery_s / 2) and removes the attempt. A failure
leaves the attempt for the next pass.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from server import keys
from server.errors import GiftcastError
from server.split_gift import SplitGiftStore
from server.tasks import cancel_and_wait

__all__ = ["GiftRecovery"]

log = logging.getLogger(__name__)


class GiftRecovery:
    def __init__(self, client: RedisCluster | Redis, store: SplitGiftStore, *, period_s: float, batch: int = 100) -> None:
        self._client = client
        self._store = store
        self._period_s = period_s
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="giftcast-gift-recovery")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def run_once(self) -> int:
        """One pass over every partition; returns how many gifts it completed."""
        completed = 0
        for partition in range(keys.GIFT_PARTITIONS):
            index = keys.gifts_in_flight(partition)
            due = await self._client.zrangebyscore(index, "-inf", int(time.time() * 1000), start=0, num=self._batch)
            for attempt in due:
                sender, key, _ = attempt.decode().split(" ")
                try:
                    if await self._store.finish(sender, key):
                        completed += 1
                        log.warning("recovered an unfinished gift: sender %s, key %s", sender, key)
                except (RedisError, RedisClusterException, GiftcastError) as exc:
                    log.warning("could not finish the gift of %s with key %s yet: %s", sender, key, exc)
                    continue
                await self._client.zrem(index, attempt)
        return completed

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            try:
                await self.run_once()
            except (RedisError, RedisClusterException) as exc:
                log.warning("gift recovery pass failed (%s); next pass in %.1f s", exc, self._period_s)
            except Exception:
                log.exception("gift recovery pass failed; next pass in %.1f s", self._period_s)
