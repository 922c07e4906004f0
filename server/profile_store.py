"""ProfileStore: users' profiles (`profile:{u:ID}` hashes) in Redis. Moves no money.

A profile change is not a balance change, so it is a plain transaction (MULTI/EXEC), not a
script. The gift path reads the sender's and the creator's profile on every gift (`get_many`),
so profiles read there are kept in this process for `cache_s` seconds
(`GIFTCAST_PROFILE_CACHE_S`): a profile changed through another process (or directly in Redis)
applies to gifts within that time; one changed through this store applies at once. Profiles
only decide who may gift and at which region's rate; balances, locks and spending limits are
always checked by the scripts on the current state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis

from server import keys
from server.profiles import Profile

__all__ = ["ProfileStore"]


def _decoded(row: Mapping[bytes, bytes]) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in row.items()}


MAX_CACHED = 100_000


class ProfileStore:
    def __init__(self, client: aioredis.Redis, *, cache_s: float = 0.0):
        self._client = client
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, Profile]] = {}  # user -> (expires, profile)

    async def get(self, user_id: str) -> Profile:
        """The stored profile, read now (never from the cache)."""
        return Profile.from_fields(user_id, _decoded(await self._client.hgetall(keys.profile(user_id))))

    async def get_many(self, user_ids: Sequence[str]) -> list[Profile]:
        """Several profiles, from the cache when fresh, the rest in one round trip."""
        now = time.monotonic()
        found = {user_id: entry[1] for user_id in user_ids
                 if (entry := self._cache.get(user_id)) is not None and entry[0] > now}
        missing = [user_id for user_id in dict.fromkeys(user_ids) if user_id not in found]
        if len(missing) == 1:
            found[missing[0]] = await self.get(missing[0])
        elif missing:
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id in missing:
                    pipe.hgetall(keys.profile(user_id))
                rows = await pipe.execute()
            found.update((user_id, Profile.from_fields(user_id, _decoded(row)))
                         for user_id, row in zip(missing, rows, strict=True))
        if self._cache_s > 0 and missing:
            if len(self._cache) > MAX_CACHED:
                self._cache.clear()
            self._cache.update((user_id, (now + self._cache_s, found[user_id])) for user_id in missing)
        return [found[user_id] for user_id in user_ids]

    async def update(self, user_id: str, changes: Mapping[str, str | None]) -> Profile:
        """Apply validated changes (`profiles.profile_changes`); None clears a field."""
        key = keys.profile(user_id)
        values = {name: value for name, value in changes.items() if value is not None}
        cleared = [name for name, value in changes.items() if value is None]
        async with self._client.pipeline(transaction=True) as pipe:
            if values:
                pipe.hset(key, mapping=values)
            if cleared:
                pipe.hdel(key, *cleared)
            pipe.hgetall(key)
            *_, row = await pipe.execute()
        self._cache.pop(user_id, None)
        return Profile.from_fields(user_id, _decoded(row))
