"""ProfileStore: users' profiles (`profile:{u:ID}` hashes) in Redis. Moves no money.

A profile change is not a balance change, so it is a plain transaction (MULTI/EXEC), not a
script. Readers on the gift path fetch the sender's and the creator's profile in one round
trip (`get_many`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis

from server import keys
from server.profiles import Profile

__all__ = ["ProfileStore"]


def _decoded(row: Mapping[bytes, bytes]) -> dict[str, str]:
    return {name.decode(): value.decode() for name, value in row.items()}


class ProfileStore:
    def __init__(self, client: aioredis.Redis):
        self._client = client

    async def get(self, user_id: str) -> Profile:
        return Profile.from_fields(user_id, _decoded(await self._client.hgetall(keys.profile(user_id))))

    async def get_many(self, user_ids: Sequence[str]) -> list[Profile]:
        async with self._client.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.hgetall(keys.profile(user_id))
            rows = await pipe.execute()
        return [Profile.from_fields(user_id, _decoded(row)) for user_id, row in zip(user_ids, rows, strict=True)]

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
        return Profile.from_fields(user_id, _decoded(row))
