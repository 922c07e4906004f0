"""The Redis connection giftcast runs on (and, without a REDIS_URL, the embedded Valkey under it).

`async with RedisRuntime(settings) as rt:` gives `rt.client` and `rt.url`.

- `settings.redis_url` set: connect there; the server must be Redis >= 7 or Valkey, else ConfigError,
  and configured for money (appendonly yes, appendfsync always, noeviction), else ConfigError
  unless `redis_allow_unsafe` (then a warning). If CONFIG is refused, a warning (docs/durability.md).
- `settings.redis_url` is `redis+cluster://[user:pw@]host:port` (or `rediss+cluster://`, TLS): a
  Redis Cluster, discovered from that seed node. `rt.cluster` is True, `rt.client` is a
  `RedisCluster` (commands routed by their keys' slot, MOVED/ASK followed), every primary must be
  Redis >= 7 or Valkey and configured for money, and `rt.node_client(host, port)` opens a plain
  client on one node (the sharded pub/sub connections, `cluster_broker.py`).
- unset: start the embedded Valkey on `data_dir` (`embedded_valkey.EmbeddedValkey`: a free
  127.0.0.1 port, AOF with fsync always, noeviction, a lock on the data dir); `rt.pid` is its pid.
- exit (also after a failed or cancelled enter): close the client, then stop the embedded Valkey
  (it fsyncs the AOF) and release the data dir's lock.

Connections: at most `settings.redis_max_connections` per process (a `BlockingConnectionPool`):
a command that finds them all busy waits up to REDIS_POOL_TIMEOUT_S for one, then fails with a
ConnectionError (a gift answers `unavailable`, retry with the same key). redis-py's default pool
instead raised "Too many connections" at once past 100 concurrent commands. redis-py's cluster
client has no waiting pool (past its per-node limit it raises at once), so on a cluster at most
`redis_max_connections` commands and pipelines run at a time and the others wait their turn
(`_WaitingCluster`).

The client never retries a command by itself (redis-py's default would re-send up to 3 times): a
command whose connection broke may or may not have run, and re-running a money script is the
caller's decision (it owns the idempotency key).

With GIFTCAST_REDIS_WAIT_REPLICAS the server must also support WAITAOF with a local AOF
(`durable.check_replication`), else ConfigError.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from server.durable import ReplicaWait, check_replication
from server.embedded_valkey import EmbeddedValkey
from server.errors import ConfigError
from server.settings import Settings

__all__ = ["RedisRuntime", "cluster_seed_url", "durability_problems", "redact_url"]

log = logging.getLogger(__name__)

_CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": False,
    "socket_connect_timeout": 5.0,
    # Scripts are short; blocking commands (XREAD BLOCK ...) must block for less than this.
    "socket_timeout": 10.0,
    "socket_keepalive": True,
    "health_check_interval": 15,  # PING a connection idle this long before reusing it
    "retry": Retry(NoBackoff(), 0),
    "client_name": "giftcast",
}


# Seconds a command waits for a free pooled connection before failing.
REDIS_POOL_TIMEOUT_S = 5.0

class _WaitingCluster(RedisCluster):
    """A RedisCluster on which at most `limit` commands or pipelines are in flight; the others
    wait for a turn instead of failing with MaxConnectionsError."""

    def limit(self, concurrent: int) -> _WaitingCluster:
        self._turns = asyncio.Semaphore(concurrent)
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._turns:
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises, as RedisCluster does
        return _WaitingPipeline(self, transaction)


class _WaitingPipeline(ClusterPipeline):
    __slots__ = ()

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self.cluster_client._turns:  # type: ignore[attr-defined]
            return await super().execute(*args, **kwargs)


_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_seed_url(url: str | None) -> str | None:
    """For a Redis Cluster URL (`redis+cluster://` or `rediss+cluster://`), the plain URL of its
    seed node; None for any other URL."""
    if url is None:
        return None
    parts = urlsplit(url)
    scheme = _CLUSTER_SCHEMES.get(parts.scheme)
    return None if scheme is None else urlunsplit(parts._replace(scheme=scheme))


class RedisRuntime:
    """Async context manager owning the client (and, embedded, the Valkey process and lock)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Redis | RedisCluster | None = None
        self._embedded: EmbeddedValkey | None = None
        self.url: str | None = settings.redis_url  # embedded: set on enter
        self.pid: int | None = None  # the embedded Valkey's pid; None with redis_url
        self._seed_url = cluster_seed_url(settings.redis_url)
        self.cluster = self._seed_url is not None

    @property
    def client(self) -> Redis | RedisCluster:
        if self._client is None:
            raise RuntimeError("RedisRuntime is not entered")
        return self._client

    def node_client(self, host: str, port: int) -> Redis:
        """A client on one node of the cluster (same credentials and TLS as the seed)."""
        assert self._seed_url is not None, "node_client is for Redis Cluster"
        parts = urlsplit(self._seed_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
        return Redis.from_url(urlunsplit(parts._replace(netloc=netloc)), **_CLIENT_OPTIONS)

    async def __aenter__(self) -> RedisRuntime:
        try:
            if self._seed_url is not None:
                limit = self._settings.redis_max_connections
                # Per node: the turns bound what giftcast's commands take; the margin is for the
                # client's own (topology refreshes).
                self._client = _WaitingCluster.from_url(
                    self._seed_url, max_connections=limit + 16, **_CLIENT_OPTIONS).limit(limit)
            else:
                if self._settings.redis_url is None:
                    self._embedded = EmbeddedValkey(self._settings.data_dir)
                    await self._embedded.start()
                    self.url, self.pid = self._embedded.url, self._embedded.pid
                assert self.url is not None
                pool = BlockingConnectionPool.from_url(
                    self.url, max_connections=self._settings.redis_max_connections,
                    timeout=REDIS_POOL_TIMEOUT_S, **_CLIENT_OPTIONS)
                self._client = Redis.from_pool(pool)  # the client owns (and closes) the pool
            await self._check_server()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    async def ready(self, timeout: float = 1.0) -> bool:
        """True if the server answers PING within `timeout` seconds. Never raises."""
        if self._client is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                return bool(await self._client.ping())
        except (RedisError, OSError, TimeoutError):
            return False

    async def _check_server(self) -> None:
        client = self.client
        try:
            async with asyncio.timeout(10):
                if isinstance(client, RedisCluster):
                    await client.initialize()  # discovers the nodes; fails unless all slots are served
                    infos = await client.info("server", target_nodes=RedisCluster.PRIMARIES)
                else:
                    infos = {"": await client.info("server")}
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot use Redis at {redact_url(self.url or '')}: {exc!r}") from exc
        for node, info in infos.items():
            require_redis7(info, f"{self.url or ''} {node}".strip())
        if self._settings.redis_url is not None:
            await self._check_durability()
        wait = ReplicaWait.from_settings(self._settings)
        if wait is not None:
            assert isinstance(client, Redis)  # Settings refuses replica waits on a cluster
            await check_replication(client, wait)

    async def _check_durability(self) -> None:
        """An external server (every primary of a cluster) must keep acknowledged money writes
        (docs/durability.md)."""
        url = redact_url(self.url or "")
        client = self.client
        try:
            async with asyncio.timeout(10):
                if isinstance(client, RedisCluster):
                    configs = [await _money_config(self.node_client(node.host, node.port), close=True)
                               for node in client.get_primaries()]
                else:
                    configs = [await _money_config(client)]
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("cannot read the durability settings of %s (%s); make sure it runs with %s",
                        url, type(exc).__name__, _MONEY_SETTINGS)
            return
        problems = sorted({problem for config in configs for problem in durability_problems(config)})
        if not problems:
            return
        message = f"Redis at {url} is not configured for money: " + "; ".join(problems)
        if not self._settings.redis_allow_unsafe:
            raise ConfigError(f"{message}. Configure {_MONEY_SETTINGS}, or set GIFTCAST_REDIS_ALLOW_UNSAFE=1")
        log.warning("%s (starting anyway: GIFTCAST_REDIS_ALLOW_UNSAFE)", message)

    async def _close(self) -> None:
        client, self._client = self._client, None
        embedded, self._embedded = self._embedded, None
        try:
            if client is not None:
                await client.aclose()
        finally:
            if embedded is not None:
                await embedded.stop()


def require_redis7(info: dict[str, Any], url: str) -> None:
    """Raise ConfigError unless INFO server describes Valkey or Redis >= 7."""
    if "valkey_version" in info:
        return
    version = str(info.get("redis_version", "unknown"))
    major = version.split(".")[0]
    if not (major.isdigit() and int(major) >= 7):
        raise ConfigError(f"giftcast needs Redis >= 7 or Valkey, but {redact_url(url)} is Redis {version}")


_MONEY_SETTINGS = "appendonly yes, appendfsync always, maxmemory-policy noeviction"


def durability_problems(config: dict[str, str]) -> list[str]:
    """What a server configured like `config` (CONFIG GET output) could lose. Empty: safe."""
    problems = []
    if config.get("appendonly") != "yes":
        problems.append("appendonly is not yes: a crash loses every write since the last snapshot")
    elif config.get("appendfsync") != "always":
        problems.append(f"appendfsync is {config.get('appendfsync')}, not always: a machine crash or power "
                        "loss can lose acknowledged gifts and payments (about the last second or more)")
    if config.get("maxmemory-policy") != "noeviction":
        problems.append(f"maxmemory-policy is {config.get('maxmemory-policy')}, not noeviction: memory pressure "
                        "can evict wallets, ledgers or idempotency keys")
    return problems


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _money_config(client: Redis, *, close: bool = False) -> dict[str, str]:
    """The settings `durability_problems` looks at, as text."""
    try:
        config = await client.config_get("append*")
        config.update(await client.config_get("maxmemory-policy"))
        return {_text(k): _text(v) for k, v in config.items()}
    finally:
        if close:
            await client.aclose()


def redact_url(url: str) -> str:
    """`url` with any password replaced by ***, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
