"""The command line as a user runs it: real processes, real signals."""

import os
import signal
import subprocess
import sys

from server import keys
from tests.factories import make_stores


def run_audit(valkey_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REDIS_URL": valkey_url}
    return subprocess.run([sys.executable, "-m", "server", "audit"], env=env, capture_output=True, text=True, timeout=60)


async def test_audit_command_passes_on_a_consistent_book(redis, valkey_url):
    await make_stores(redis).set_coins("bob", 70)
    result = run_audit(valkey_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit: OK" in result.stdout


async def test_audit_command_fails_and_names_the_tampered_wallet(redis, valkey_url):
    await make_stores(redis).set_coins("bob", 70)
    await redis.hset(keys.wallet("bob"), "coins", 1_000_000)
    result = run_audit(valkey_url)
    assert result.returncode == 1
    assert "MISMATCH bob: coins balance 1000000" in result.stdout


async def test_serve_starts_on_the_embedded_valkey_and_stops_cleanly_on_sigterm(start_process, tmp_path):
    server = await start_process(GIFTCAST_DATA_DIR=str(tmp_path / "data"))
    assert "(redis: embedded valkey in" in server.banner
    async with server.http() as http:
        assert (await http.get("/healthz")).status_code == 200
    valkey_pid = int((tmp_path / "data" / "valkey" / "valkey.pid").read_text())
    assert list((tmp_path / "data" / "valkey").glob("appendonlydir/*.aof"))
    # uvicorn shuts down cleanly, then re-raises the signal so the exit status reports it.
    assert await server.terminate() in (0, -signal.SIGTERM)
    assert not os.path.exists(f"/proc/{valkey_pid}") or "Z" in open(f"/proc/{valkey_pid}/stat").read().split()[2]
