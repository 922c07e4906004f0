"""Rate versions published at run time, on a real Valkey: numbered, checked, seen by every
process before they take effect."""

import asyncio

import pytest
import redis.asyncio as aioredis

from server import keys
from server.errors import ConfigError, InvalidField
from server.rates import RateChange
from tests.conftest import wait_until
from tests.factories import make_stores, now_ms

REFRESH_S = 0.2  # so a version may take effect 1.2 s after it is published


def book(client):
    return make_stores(client, rate_refresh_s=REFRESH_S).bank.rates


async def test_a_published_version_is_the_next_and_applies_from_its_time(redis):
    rates = book(redis)
    before = now_ms()
    rate = await rates.publish(RateChange("US", 8_000, 400, None), admin="root")
    table = await rates.table()
    assert (rate.version, rate.currency) == (2, "USD") and rate.from_ms >= before + 1_200
    assert (table.current("US", rate.from_ms - 1).version, table.current("US", rate.from_ms)) == (1, rate)
    assert table.current("GB", rate.from_ms).version == 1


@pytest.mark.parametrize("from_in_ms", [0, 1_000, -60_000])  # sooner than every process would see it
async def test_a_version_taking_effect_too_soon_is_refused_and_changes_nothing(redis, from_in_ms):
    with pytest.raises(InvalidField):
        await book(redis).publish(RateChange("US", 8_000, 400, now_ms() + from_in_ms), admin="root")
    assert await redis.hgetall(keys.PUBLISHED_RATES) == {}


async def test_a_version_taking_effect_before_the_previous_one_is_refused(redis):
    rates = book(redis)
    await rates.publish(RateChange("US", 8_000, 400, now_ms() + 60_000), admin="root")
    with pytest.raises(InvalidField):
        await rates.publish(RateChange("US", 9_000, 450, now_ms() + 30_000), admin="root")
    assert [r.version for r in (await rates.table()).versions["US"]] == [1, 2]


async def test_admins_publishing_at_once_get_one_version_each(redis, valkey_url):
    clients = [aioredis.Redis.from_url(valkey_url) for _ in range(3)]
    try:
        published = await asyncio.gather(*(book(client).publish(RateChange("KR", 9_000 + i, 6_000, None),
                                                                 admin="root") for i, client in enumerate(clients)))
    finally:
        for client in clients:
            await client.aclose()
    assert sorted(r.version for r in published) == [2, 3, 4]
    history = (await book(redis).table()).versions["KR"]
    assert [r.from_ms for r in history[1:]] == sorted({r.from_ms for r in history[1:]})  # strictly in order


async def test_another_process_prices_with_a_version_once_it_takes_effect(redis, valkey_url):
    other_client = aioredis.Redis.from_url(valkey_url)
    try:
        other = book(other_client)
        assert (await other.table()).current("US", now_ms()).version == 1  # its copy, read before
        rate = await book(redis).publish(RateChange("US", 5_000, 250, None), admin="root")
        await wait_until(lambda: now_ms() >= rate.from_ms)
        assert (await other.table()).current("US", now_ms()) == rate
    finally:
        await other_client.aclose()


async def test_published_versions_contradicting_the_catalog_stop_the_load(redis):
    await redis.hset(keys.PUBLISHED_RATES, "US:v1", "0:5000:250:0:root")  # the catalog's v1 differs
    with pytest.raises(ConfigError):
        await book(redis).reload()
