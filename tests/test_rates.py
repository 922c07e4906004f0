"""The versioned rate table: which version applies when, and what a bad table looks like."""

import pytest

from server.audit import audit
from server.errors import ConfigError, InvalidField
from server.rates import Rate, rate_change
from tests.conftest import wait_until
from tests.factories import catalog_file, catalog_with, make_stores, now_ms, rate_toml

T = 1_800_000_000_000  # 2027-01-15, when US v2 below takes effect

V2 = rate_toml("US", 2, T, 8000, 450)


def test_first_version_applies_until_a_later_one_takes_effect():
    rates = catalog_with(V2).rates
    assert (rates.current("US", T - 1).version, rates.current("US", T).version) == (1, 2)
    assert rates.current("US", T).rate_bp == 8000


def test_a_new_version_in_one_region_leaves_the_others():
    assert catalog_with(V2).rates.current("GB", T + 1).version == 1


def test_cash_value_rounds_down_in_the_region_currency():
    rate = catalog_with(V2).rates.current("US", T)
    assert (rate.cash_for(2_001), rate.currency) == (900, "USD")  # 900.45 cents


@pytest.mark.parametrize("extra,problem", [
    (V2 + V2, "twice"),
    (V2.replace("from = 2027-01-15T08:00:00Z\n", ""), "after v1"),
    (V2.replace("region = \"US\"", "region = \"ZZ\""), "unknown region"),
    (V2.replace("8000", "-1"), "rate_bp"),
    (V2 + rate_toml("US", 3, T - 1, 8000, 450), "after v2"),
])
def test_bad_rate_tables_stop_the_load(extra, problem):
    with pytest.raises(ConfigError, match=problem):
        catalog_with(extra)


async def test_a_new_rate_version_applies_to_later_gifts_and_withdrawals_only(start_server, open_client, redis,
                                                                               tmp_path):
    """US v2 (half the diamonds, half the cash) takes effect 4 s after start: a gift and a
    withdrawal before it keep v1, later ones use v2, and the withdrawal asked for under v1 is
    paid at its v1 value after the change."""
    switch_ms = now_ms() + 4_000  # room for a slow start on a loaded machine
    catalog = catalog_file(tmp_path, rate_toml("US", 2, switch_ms, 5_000, 250))
    server = await start_server(catalog_path=catalog)
    stores = make_stores(redis)
    await stores.set_coins("bob", 100)
    await stores.set_diamonds("alice", 10_000)
    await stores.lives.set_state("alice", "open")
    sender = await open_client(server, "bob")
    async with server.http(server.token("alice", "creator")) as creator, \
            server.http(server.token("root", "admin")) as admin:
        before = (await sender.gift(gift_id="panda"))["receipt"]
        held = (await creator.post("/v1/withdrawals", json={"diamonds": 4_000, "method": "bank", "key": "w1"})).json()
        assert now_ms() < switch_ms, "the machine was too slow to act before the switch"
        await wait_until(lambda: now_ms() > switch_ms)
        after = (await sender.gift(gift_id="panda"))["receipt"]
        later = (await creator.post("/v1/withdrawals", json={"diamonds": 2_000, "method": "bank", "key": "w2"})).json()
        await admin.post(f"/v1/admin/withdrawals/{held['id']}/approve", json={})
        await wait_until(lambda: withdrawal_paid(admin, held["id"]))
    assert ((before["diamonds_credited"], before["rate_bp"]), (after["diamonds_credited"], after["rate_bp"])) == (
        (5, 10_000), (2, 5_000))
    assert ((held["cash"], held["rate_version"]), (later["cash"], later["rate_version"])) == ((2_000, 1), (500, 2))
    received = [e for e in await stores.wallets.ledger("alice") if e["kind"] in ("gift_received", "payout")]
    assert [(e["kind"], e["rate_version"]) for e in received] == [("payout", 1), ("gift_received", 2),
                                                                 ("gift_received", 1)]
    assert next(e for e in received if e["kind"] == "payout")["cash"] == 2_000
    assert (await audit(redis)).ok


async def withdrawal_paid(admin, withdrawal_id):
    return (await admin.get(f"/v1/withdrawals/{withdrawal_id}")).json()["status"] == "paid"


@pytest.mark.parametrize("data", [
    {"region": "XX", "rate_bp": 8000, "cash_per_1000_diamonds": 400},
    {"rate_bp": 8000, "cash_per_1000_diamonds": 400},
    {"region": "US", "rate_bp": -1, "cash_per_1000_diamonds": 400},
    {"region": "US", "rate_bp": 1_000_001, "cash_per_1000_diamonds": 400},
    {"region": "US", "rate_bp": 8000.5, "cash_per_1000_diamonds": 400},
    {"region": "US", "rate_bp": 8000},
    {"region": "US", "rate_bp": 8000, "cash_per_1000_diamonds": "400"},
    {"region": "US", "rate_bp": 8000, "cash_per_1000_diamonds": 400, "from": "tomorrow"},
    {"region": "US", "rate_bp": 8000, "cash_per_1000_diamonds": 400, "from": True},
])
def test_bad_rate_changes_are_invalid_fields(data):
    with pytest.raises(InvalidField):
        rate_change(catalog_with("").rates, data)


def test_published_versions_join_the_catalogs():
    table = catalog_with("").rates
    v2 = Rate("US", 2, T, 8000, 400, "USD")
    merged = table.with_published([v2])
    assert (merged.current("US", T - 1).version, merged.current("US", T), merged.latest("US")) == (1, v2, v2)


@pytest.mark.parametrize("published", [
    [Rate("US", 1, None, 9000, 500, "USD")],  # the catalog's v1, different
    [Rate("US", 2, T, 8000, 400, "USD"), Rate("US", 3, T - 1, 8000, 400, "USD")],  # v3 before v2
])
def test_published_versions_that_contradict_are_refused(published):
    with pytest.raises(ValueError):
        catalog_with("").rates.with_published(published)
