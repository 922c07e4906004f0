"""Profiles in Redis: updates, clearing a field, reading several in one round trip."""

import datetime

from server.profile_store import ProfileStore
from server.profiles import Profile
from tests.conftest import wait_until


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


async def test_a_change_through_this_store_applies_at_once(redis):
    profiles = ProfileStore(redis, cache_s=60)
    await profiles.get_many(["bob", "alice"])
    await profiles.update("bob", {"region": "KR"})
    assert (await profiles.get_many(["bob", "alice"]))[0].region == "KR"


async def test_a_change_made_elsewhere_applies_once_the_cached_copy_expires(redis):
    cached, elsewhere = ProfileStore(redis, cache_s=0.2), ProfileStore(redis)
    await cached.get_many(["bob", "alice"])
    await elsewhere.update("bob", {"region": "KR"})
    assert (await cached.get_many(["bob", "alice"]))[0].region is None  # still the cached copy
    await wait_until(lambda: _region_of(cached, "bob", "KR"))


async def _region_of(profiles, user, region):
    return (await profiles.get_many([user, "alice"]))[0].region == region
