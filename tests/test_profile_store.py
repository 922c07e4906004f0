"""Profiles in Redis: updates, clearing a field, reading several in one round trip."""

import datetime

from server.profile_store import ProfileStore
from server.profiles import Profile


async def test_update_sets_and_clears_fields(redis):
    profiles = ProfileStore(redis)
    await profiles.update("bob", {"region": "KR", "birth_date": "2000-02-29"})
    updated = await profiles.update("bob", {"birth_date": None, "account_type": "business"})
    assert updated == Profile("bob", "KR", None, "business") == await profiles.get("bob")


async def test_get_many_keeps_the_order_and_defaults_unknown_users(redis):
    profiles = ProfileStore(redis)
    await profiles.update("alice", {"birth_date": "1990-05-01"})
    bob, alice = await profiles.get_many(["bob", "alice"])
    assert bob == Profile("bob") and alice.birth_date == datetime.date(1990, 5, 1)
