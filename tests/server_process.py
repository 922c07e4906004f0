"""Real giftcast server processes (`python -m server serve`) for tests where processes matter:
several hubs on one Redis, signals, exit codes."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from server.auth import mint_token

STARTUP_TIMEOUT_S = 60.0  # two busy cores: imports and start-up of several processes at once


@dataclasses.dataclass
class ServerProcess:
    """One running `python -m server serve`; its stderr goes to `log_path`."""

    proc: asyncio.subprocess.Process
    port: int
    token_secret: str
    log_path: Path
    banner: str = ""  # the "giftcast listening on ..." line

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def token(self, user: str, role: str = "viewer", ttl_s: int = 600) -> str:
        return mint_token(self.token_secret, user, role, now=int(time.time()), ttl_s=ttl_s)

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.http_url, headers=headers, timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait(self, timeout: float = 30.0) -> int:
        """The exit status, once the process has exited."""
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (graceful shutdown) and wait for the exit status; SIGKILL if it hangs."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await self.wait(timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise


async def start_server_process(env: dict[str, str], *, port: int, token_secret: str, log_path: Path) -> ServerProcess:
    """Start `python -m server serve` with `env` on top of ours (REDIS_URL removed unless given:
    the embedded Valkey then starts); returns once it prints its "listening" line."""
    full_env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    full_env.update(PORT=str(port), GIFTCAST_TOKEN_SECRET=token_secret, GIFTCAST_LOG_LEVEL="warning", **env)
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "serve", env=full_env, stdout=asyncio.subprocess.PIPE, stderr=log)
    server = ServerProcess(proc, port, token_secret, log_path)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(STARTUP_TIMEOUT_S):
            line = (await proc.stdout.readline()).decode()
    except BaseException:
        await server.terminate()
        raise
    if f"giftcast listening on http://127.0.0.1:{port}" not in line:
        await server.terminate()
        raise AssertionError(f"server did not start: {line!r}\n{server.log()}")
    server.banner = line
    return server
