"""The harness: one Valkey, the users, and a room of load-generator connections on a server.

`Bench` owns what lives for a whole run (Valkey, placement, the giftcast used for set-up, the
shared send-time table, the JSON results). `Room` is one server under test with its
connections: sender connections in one (Python) worker, viewers spread over the others: C viewer
workers (cviewers.py) by default, Python ones with `viewers="py"`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import setup
from benchmarks.cviewers import start_cviewers
from benchmarks.loadgen import SendTimes, WorkerHandle, raise_nofile, start_worker
from benchmarks.procs import ROOT, Placement, ServerProc, Valkey, ValkeyCluster, core_times, machine_info
from benchmarks.targets import TARGETS, Context, Target, export_before

__all__ = ["Bench", "Room", "log"]

VIEWERS_PER_WORKER = 2500  # several generator processes for big rooms (they share the generator core)
SHM_CAP = 1 << 20
CREATOR = "benchstar"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, out_dir: Path, *, pin: bool = True, fsync: str = "always",
                 viewer_users: int = 200, senders: int = 8, before: str | None = None, cluster: int = 0,
                 viewers: str = "c") -> None:
        raise_nofile()
        if viewers not in ("c", "py"):
            raise ValueError(f"viewers: 'c' or 'py', not {viewers!r}")
        self.viewers = viewers  # which load-generator worker holds the viewer connections
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.placement = Placement.plan(pin)
        self.tmp = Path(tempfile.mkdtemp(prefix="giftcast-bench-"))
        log(f"placement: server {self.placement.server}, valkey {self.placement.valkey}, "
            f"generator {self.placement.generator}; scratch {self.tmp}")
        self.cluster = cluster  # primaries of a Redis Cluster (scenario 8); 0: one Valkey
        if cluster and fsync != "always":
            raise ValueError("the cluster runs with appendfsync always only")
        self.valkey: Valkey | ValkeyCluster = (
            ValkeyCluster(self.tmp / "cluster", self.placement.valkey, cluster) if cluster
            else Valkey(self.tmp / "valkey", self.placement.valkey, fsync))
        shm_dir = Path("/dev/shm") if Path("/dev/shm").is_dir() else self.tmp
        self.times = SendTimes(shm_dir / f"giftcast-bench-{os.getpid()}", SHM_CAP, create=True)
        self.ctx = Context(self.valkey.url, secrets.token_urlsafe(16), secrets.token_urlsafe(16),
                           self.placement.server, out_dir / "logs", _gift_prices(),
                           before_dir=export_before(before, self.tmp / "before") if before else None)
        self.results: dict[str, Any] = {"machine": machine_info(), "argv": sys.argv,
                                         "placement": vars(self.placement), "valkey_fsync": fsync,
                                         "before": before, "cluster_primaries": cluster,
                                         "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "scenarios": {}}
        self.setup_server = TARGETS["giftcast"].start(self.ctx, tag="-setup")
        self.base_url = f"http://127.0.0.1:{self.setup_server.port}"
        self.pop = setup.populate(self.base_url, creator=CREATOR, viewers=viewer_users, senders=senders)
        self.funded: dict[str, int] = {}

    def fund(self, coins_each: int) -> None:
        """Make sure every sender holds at least `coins_each` coins (sandbox orders)."""
        balances = setup.fund(self.base_url, self.pop.sender_tokens, coins_each)
        self.funded = dict(zip(self.pop.sender_ids, balances, strict=True))

    def record(self, scenario: str, data: Any) -> None:
        self.results["scenarios"][scenario] = data
        self.save()

    def save(self) -> Path:
        path = self.out_dir / "results.json"
        path.write_text(json.dumps(self.results, indent=1, default=str))
        return path

    def close(self) -> None:
        self.setup_server.stop()
        self.valkey.stop()
        with contextlib.suppress(OSError):
            self.times.path.unlink()
        shutil.rmtree(self.tmp, ignore_errors=True)  # Valkey's AOF of this run

    @contextlib.contextmanager
    def room(self, target: Target, viewers: int, senders: int, *, env: dict[str, str] | None = None,
             concurrency: int = 50, processes: int = 1) -> Iterator[Room]:
        """`processes` servers of `target` on the same Valkey; senders connect to the first,
        viewer workers to each in turn (at least one viewer worker per server)."""
        ctx = self.ctx if not env else Context(**{**vars(self.ctx), "extra_env": env})
        self.times.clear()
        servers: list[ServerProc] = []
        try:
            for _ in range(processes):
                servers.append(target.start(ctx))
            room = Room(self, target, servers)
            try:
                room.connect(viewers, senders, concurrency)
                yield room
            finally:
                room.close()
        finally:
            for server in servers:
                server.stop()


class Room:
    """A server under test and the load generator's connections to it."""

    def __init__(self, bench: Bench, target: Target, servers: list[ServerProc]) -> None:
        self.bench = bench
        self.target = target
        self.servers = servers
        self.server = servers[0]
        self.sender: WorkerHandle | None = None
        self.viewers: list[WorkerHandle] = []
        self.members = 0
        self.connect_stats: dict[str, Any] = {}

    def _spec(self, port: int) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": port, "dialect": self.target.dialect, "room": CREATOR,
                "shm_path": str(self.bench.times.path), "shm_cap": SHM_CAP,
                "cpus": list(self.bench.placement.generator)}

    @property
    def workers(self) -> list[WorkerHandle]:
        return ([self.sender] if self.sender else []) + self.viewers

    def connect(self, viewers: int, senders: int, concurrency: int, *, kind: str | None = None) -> None:
        """`kind`: the viewer workers, "c" or "py" (default: the bench's)."""
        pop = self.bench.pop
        n_workers = max(len(self.servers), -(-viewers // VIEWERS_PER_WORKER)) if viewers else 0
        if senders:
            self.sender = start_worker(self._spec(self.server.port))
        start = start_cviewers if (kind or self.bench.viewers) == "c" else start_worker
        self.viewers = [start(self._spec(self.servers[i % len(self.servers)].port)) for i in range(n_workers)]
        rss0 = self.server.stats.rss_bytes()
        if self.sender:
            reply = self.sender.call("connect", n=senders, tokens=pop.sender_tokens[:senders])
            if reply["failed"]:
                raise RuntimeError(f"{self.target.name}: sender connections failed: {reply['errors']}")
        rss1, cpu1 = self.server.stats.rss_bytes(), self.server.stats.cpu_s()
        started = time.monotonic()
        shares = [viewers // n_workers + (i < viewers % n_workers) for i in range(n_workers)]
        for worker, n in zip(self.viewers, shares, strict=True):
            worker.send("connect", n=n, tokens=pop.viewer_tokens, concurrency=max(1, concurrency // n_workers))
        replies = [worker.reply(timeout_s=600) for worker in self.viewers]
        secs = time.monotonic() - started
        failed = sum(r["failed"] for r in replies)
        if failed:
            raise RuntimeError(f"{self.target.name}: {failed} viewer connections failed: {replies[0]['errors']}")
        time.sleep(0.5)  # let the server settle before reading its memory
        rss2, cpu2 = self.server.stats.rss_bytes(), self.server.stats.cpu_s()
        self.members = viewers + senders
        self.connect_stats = {
            "rss_idle_base_mib": rss0 / 2**20, "rss_after_mib": rss2 / 2**20,
            "rss_per_conn_kib": (rss2 - rss1) / max(viewers, 1) / 1024 if viewers else None,
            "handshakes_per_s": viewers / secs if viewers else None,
            "server_cpu_us_per_handshake": (cpu2 - cpu1) / max(viewers, 1) * 1e6 if viewers else None,
            "connect_s": secs,
        }

    def broadcast(self, cmd: str, timeout_s: float = 60.0, **args: Any) -> list[dict[str, Any]]:
        for worker in self.workers:
            worker.send(cmd, **args)
        return [worker.reply(timeout_s) for worker in self.workers]

    def server_cpu_s(self) -> float:
        return sum(server.stats.cpu_s() for server in self.servers)

    def window(self, measure_s: float) -> dict[str, Any]:
        """Measure for `measure_s`: server(s), Valkey and generator CPU, deliveries, latency.
        `parts` are the workers' replies, the sender's first."""
        valkey = self.bench.valkey
        publishes0 = valkey.command_calls("publish") + valkey.command_calls("spublish")
        cores, gen_cores = self.bench.placement.server, self.bench.placement.generator
        calls0 = valkey.calls_by_command()
        self.broadcast("mark")
        s0, v0, t0 = self.server_cpu_s(), valkey.stats.cpu_s(), time.monotonic()
        c0, g0 = core_times(cores), core_times(gen_cores)
        time.sleep(measure_s)
        parts = self.broadcast("collect")
        s1, v1, t1 = self.server_cpu_s(), valkey.stats.cpu_s(), time.monotonic()
        c1, g1 = core_times(cores), core_times(gen_cores)
        calls = {name: n - calls0.get(name, 0) for name, n in valkey.calls_by_command().items()}
        return {"valkey_calls": {name: n for name, n in calls.items() if n},"parts": parts, "wall_s": t1 - t0, "server_cpu_s": s1 - s0, "valkey_cpu_s": v1 - v0,
                "server_core_busy": (c1[0] - c0[0]) / (c1[2] - c0[2]) if c1[2] > c0[2] else None,
                "server_core_irq": (c1[1] - c0[1]) / (c1[2] - c0[2]) if c1[2] > c0[2] else None,
                "generator_core_busy": (g1[0] - g0[0]) / (g1[2] - g0[2]) if g1[2] > g0[2] else None,
                "publishes": valkey.command_calls("publish") + valkey.command_calls("spublish") - publishes0}

    def received(self, lo: int, hi: int) -> tuple[int, int, dict[str, int]]:
        """(deliveries of seqs lo..hi, deliveries of hi alone, close codes seen) over all workers."""
        replies = self.broadcast("received", lo=lo, hi=hi)
        closed: dict[str, int] = {}
        for r in replies:
            for code, n in r["closed"].items():
                closed[str(code)] = closed.get(str(code), 0) + n
        return sum(r["received"] for r in replies), sum(r["last"] for r in replies), closed

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


def _gift_prices() -> dict[str, int]:
    """Gift id → coins, from the bundled catalog (the peers price gifts with it)."""
    import tomllib

    catalog = tomllib.loads((ROOT / "server" / "data" / "catalog.toml").read_text())
    return {g["id"]: g["coins"] for g in catalog["gifts"]}
