"""Settings come from the environment, once, and are frozen."""

import dataclasses
from pathlib import Path

import pytest

from server.catalog import load_catalog
from server.errors import ConfigError
from server.settings import SETTINGS_DOC, Settings


def test_defaults_without_environment():
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.redis_url, settings.dev_tokens) == ("127.0.0.1", 8000, None, False)


def test_environment_overrides_each_type():
    settings = Settings.from_env({
        "PORT": "9001", "REDIS_URL": "redis://127.0.0.1:1", "GIFTCAST_DEV_TOKENS": "yes",
        "GIFTCAST_COALESCE_MS": "12.5", "GIFTCAST_DATA_DIR": "/tmp/x",
        "GIFTCAST_ALLOWED_ORIGINS": "https://a.example, https://b.example",
    })
    assert settings.port == 9001 and settings.redis_url == "redis://127.0.0.1:1"
    assert settings.dev_tokens is True and settings.coalesce_ms == 12.5
    assert settings.data_dir == Path("/tmp/x")
    assert settings.allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize("var,value", [("PORT", "eighty"), ("GIFTCAST_DEV_TOKENS", "maybe")])
def test_bad_values_are_config_errors(var, value):
    with pytest.raises(ConfigError, match=var):
        Settings.from_env({var: value})


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().port = 1  # type: ignore[misc]


def test_every_field_is_documented_with_a_variable():
    assert set(SETTINGS_DOC) == {f.name for f in dataclasses.fields(Settings)}


def test_readme_lists_every_variable():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [var for var, _ in SETTINGS_DOC.values() if f"`{var}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("var,value", [
    ("GIFTCAST_IDEMPOTENCY_TTL_S", "3600"), ("GIFTCAST_GIFT_MAX_COUNT", "0"), ("GIFTCAST_SPEND_CAP_DAY_COINS", "0"),
    ("GIFTCAST_WITHDRAW_MIN_DIAMONDS", "0"), ("GIFTCAST_WITHDRAW_MIN_DIAMONDS", "300000"),
    ("GIFTCAST_PROFILE_CACHE_S", "-1"),
    ("GIFTCAST_GIFT_RECOVERY_S", "0"), ("GIFTCAST_FAILPOINT", "crash_somewhere"),
    ("GIFTCAST_RESUME_MAX_EVENTS", "0"), ("GIFTCAST_VIEWERS_INTERVAL_S", "0"),
    ("GIFTCAST_STREAK_WINDOW_MS", "0"), ("GIFTCAST_GIFT_RATE_PER_S", "-1"), ("GIFTCAST_FRAME_BURST", "0"),
])
def test_unsafe_values_are_refused_at_start(var, value):
    with pytest.raises(ConfigError, match=var):
        Settings.from_env({var: value})


def test_the_test_only_failpoint_is_off_unless_named():
    assert Settings.from_env({}).failpoint is None
    assert Settings.from_env({"GIFTCAST_FAILPOINT": "crash_after_debit"}).failpoint == "crash_after_debit"


@pytest.mark.parametrize("var,value", [
    ("GIFTCAST_HOOK_POLL_MS", "0"), ("GIFTCAST_HOOK_RETRY_BASE_MS", "1"), ("GIFTCAST_HOOK_TIMEOUT_S", "0"),
])
def test_webhook_timings_that_would_spin_or_hang_are_refused(var, value):
    with pytest.raises(ConfigError, match=var):
        Settings.from_env({var: value})


def test_default_spending_caps_are_about_500_usd_a_day_and_2000_a_week():
    """The issue's reference caps (YouTube), priced at the US price per coin of the largest bundle."""
    settings, largest = Settings(), max(load_catalog().bundles.values(), key=lambda bundle: bundle.coins)
    usd_cents_per_coin = largest.prices["US"] / largest.coins
    day, week = (round(cap * usd_cents_per_coin / 100) for cap in (settings.spend_cap_day_coins,
                                                                   settings.spend_cap_week_coins))
    assert (day, week) == (pytest.approx(500, rel=0.01), pytest.approx(2_000, rel=0.01))
