"""The load generator: worker processes holding client WebSockets, driven over a pipe.

The harness starts each worker with `start_worker()` (a spawned process, pinned to the
generator's cores, file-descriptor limit raised) and talks to it with `Worker.call(cmd, **args)`.
A worker imports only asyncio, uvloop, msgpack and the tiny client in wsclient.py: never the
server's code, so it measures the server through its public protocol only.

Every connection joins the room and counts the room's gift events it receives. Connections of a
worker started with `senders=True` also send gifts: open loop at a fixed rate
(`start(rate=...)`) or closed loop with a fixed number in flight (`start(depth=...)`).

Gift-to-viewer latency: a sender stores, when the ack tells it the gift's `seq`, the time it sent
that gift into a shared memory table indexed by seq (`SendTimes`, a file in /dev/shm mapped by
every worker). A viewer receiving event `seq` at time t records t - sent[seq]; if the ack has
not arrived yet, the pair waits in a short list resolved every 20 ms. All times are
CLOCK_MONOTONIC (time.monotonic_ns), one clock for every process on the machine.

Commands (each answers a dict): connect, start, mark (open a measurement window), collect
(the window's numbers), stop (stop sending), received (deliveries of a seq range, for loss),
await (answer once n events of a seq range have arrived: a test waits on the event, not a poll),
stall (stop reading), throttle (read at a fraction of the rate the server sends), unthrottle
(read freely again), ports (the connections' local TCP ports), reconnect (from now on, a closed connection
comes back after a random delay and rejoins with `since`: the reconnect storm), rejoined (how
that went), close, exit.
"""

from __future__ import annotations

import asyncio
import mmap
import multiprocessing
import os
import random
import resource
import socket
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.stats import Hist
from benchmarks.wsclient import WsConn, dialect_for

__all__ = ["SendTimes", "WorkerHandle", "raise_nofile", "start_worker"]

RESOLVE_EVERY_S = 0.02
MAX_PENDING = 20_000  # latencies waiting for their ack; beyond it they are counted as unresolved
MAX_INFLIGHT_PER_CONN = 16  # giftcast reads at most 16 requests ahead per connection
METER_TICK_S = 0.05  # a throttled connection's read credit is topped up this often


class SendTimes:
    """seq → send time (ns), shared by all workers through an mmapped file. Slot = seq % cap;
    each slot holds (seq, ns) so a reader can tell a stale slot from the one it wants."""

    def __init__(self, path: Path, cap: int, create: bool = False) -> None:
        self.path, self.cap = path, cap
        if create:
            with open(path, "wb") as f:
                f.truncate(cap * 16)
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, cap * 16)
        self.slots = memoryview(self._map).cast("q")

    def clear(self) -> None:
        """Forget every entry (a new server restarts its seqs)."""
        self._map[:] = bytes(len(self._map))

    def put(self, seq: int, ns: int) -> None:
        j = (seq % self.cap) * 2
        self.slots[j + 1] = ns
        self.slots[j] = seq

    def get(self, seq: int) -> int | None:
        j = (seq % self.cap) * 2
        return self.slots[j + 1] if self.slots[j] == seq else None


def raise_nofile() -> None:
    """Raise this process's open-file limit to the hard limit (10k sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _Worker:
    def __init__(self, spec: dict[str, Any], pipe: Connection) -> None:
        self.spec = spec
        self.pipe = pipe
        self.dialect = dialect_for(spec["dialect"])
        self.times = SendTimes(Path(spec["shm_path"]), spec["shm_cap"])
        self.conns: list[WsConn] = []
        self.counts: dict[int, int] = {}  # seq → deliveries to this worker's connections
        self.awaiting: list[Any] | None = None  # `await`: [lo, hi, events still to come, future]
        self.close_codes: Counter[int | None] = Counter()
        self.pending: list[tuple[int, int]] = []
        self.dropped_pending = 0
        self.measuring = False
        self.window_start = (0.0, 0.0)
        self.hist = Hist()
        self.ack_hist = Hist()
        self.delivered = 0
        self.acks = 0
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.throttled = 0
        self.acks_total = 0  # never reset: for reconciling balances after a scenario
        self.errors_total: Counter[str] = Counter()
        self.seq_lo: int | None = None
        self.seq_hi: int | None = None
        self.sending = False
        self.depth = 0
        self.key_prefix = "k"
        self.rr = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.reconnect_jitter_s: float | None = None  # set: closed connections come back
        self.rejoins: list[tuple[float, bool | None]] = []  # (monotonic time, resumed) per rejoin
        self.rejoin_failures: Counter[str] = Counter()

    # -- Peer callbacks (hot path) --------------------------------------------------------------

    def ready(self, conn: WsConn) -> None:
        pass

    def event(self, seq: int, now: int) -> None:
        counts = self.counts
        counts[seq] = counts.get(seq, 0) + 1
        if self.awaiting is not None:
            self._count_awaited(seq)
        if self.measuring:
            self.delivered += 1
            sent = self.times.get(seq)
            if sent is None:
                if len(self.pending) < MAX_PENDING:
                    self.pending.append((seq, now))
                else:
                    self.dropped_pending += 1  # an overloaded run: keep the loop responsive
            else:
                self.hist.add((now - sent) // 1000)

    def seen(self, seq: int) -> None:
        """A room event that is not a gift: counted (loss, exactly once), no latency."""
        self.counts[seq] = self.counts.get(seq, 0) + 1
        if self.awaiting is not None:
            self._count_awaited(seq)

    def _count_awaited(self, seq: int) -> None:
        lo, hi, left, future = self.awaiting  # type: ignore[misc]
        if lo <= seq <= hi:
            self.awaiting[2] = left - 1  # type: ignore[index]
            if left <= 1 and not future.done():
                future.set_result(None)

    def ack(self, conn: WsConn, request_id: int, seq: int, now: int) -> None:
        sent = conn.inflight.pop(request_id, None)
        if sent is None:
            return
        self.times.put(seq, sent)
        self.acks_total += 1
        if self.measuring:
            self.acks += 1
            self.ack_hist.add((now - sent) // 1000)
            if self.seq_lo is None or seq < self.seq_lo:
                self.seq_lo = seq
            if self.seq_hi is None or seq > self.seq_hi:
                self.seq_hi = seq
        if self.sending and self.depth:
            self._send(conn)

    def failed(self, conn: WsConn, request_id: int | None, code: str) -> None:
        if request_id is not None:
            conn.inflight.pop(request_id, None)
        self.errors[code] += 1
        self.errors_total[code] += 1
        if self.sending and self.depth:
            self._send(conn)

    def closed(self, conn: WsConn, code: int | None) -> None:
        self.close_codes[code] += 1
        if self.reconnect_jitter_s is not None and conn in self.conns:
            self.conns.remove(conn)
            self._spawn(self._rejoin(conn))

    async def _rejoin(self, old: WsConn) -> None:
        """Come back after a random delay (jitter), retrying every 0.1–0.5 s while refused."""
        await asyncio.sleep(random.uniform(0, self.reconnect_jitter_s or 0))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                conn = await self._open(old.token, old.rooms, since=old.position)
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.rejoin_failures[str(exc)[:60]] += 1
                await asyncio.sleep(random.uniform(0.1, 0.5))
                continue
            conn.position = conn.position if conn.position is not None else old.position
            self.rejoins.append((time.monotonic(), conn.resumed))
            return

    # -- sending ---------------------------------------------------------------------------------

    def _send(self, conn: WsConn) -> None:
        request_id = conn.next_id
        conn.next_id += 1
        conn.inflight[request_id] = time.monotonic_ns()
        self.sent += 1
        self.dialect.send_gift(conn, request_id, f"{self.key_prefix}.{id(conn) % 100000}.{request_id}")

    async def _pace(self, rate: float) -> None:
        """Open loop: send `rate` gifts per second across the connections, round robin."""
        start = time.monotonic()
        done = 0
        conns = [c for c in self.conns if c.transport is not None and not c.transport.is_closing()]
        while self.sending and conns:
            due = int((time.monotonic() - start) * rate) - done
            for _ in range(due):
                for _ in range(len(conns)):
                    conn = conns[self.rr % len(conns)]
                    self.rr += 1
                    if len(conn.inflight) < MAX_INFLIGHT_PER_CONN:
                        self._send(conn)
                        break
                else:
                    self.throttled += 1  # every connection at its in-flight limit: server behind
            done += max(due, 0)
            await asyncio.sleep(min(0.002, 1 / rate))

    async def _resolve_pending(self) -> None:
        while True:
            await asyncio.sleep(RESOLVE_EVERY_S)
            self._resolve_once()

    def _resolve_once(self) -> None:
        if not self.pending:
            return
        keep = []
        get, add = self.times.get, self.hist.add
        for seq, now in self.pending:
            sent = get(seq)
            if sent is None:
                keep.append((seq, now))
            else:
                add((now - sent) // 1000)
        self.pending = keep

    # -- commands --------------------------------------------------------------------------------

    async def cmd_connect(self, n: int, tokens: list[str], concurrency: int = 100,
                          timeout_s: float = 60.0, rcvbuf: int = 0,
                          rooms: list[list[str]] | None = None) -> dict[str, Any]:
        """Open `n` connections; connection i joins `rooms[i % len(rooms)]` (default: the spec's
        room). `rcvbuf` shrinks each socket's receive buffer before connecting (a small TCP
        window from the start)."""
        rooms = rooms or [[self.spec["room"]]]
        gate = asyncio.Semaphore(concurrency)
        errors: Counter[str] = Counter()

        async def one(i: int) -> None:
            async with gate:
                try:
                    await self._open(tokens[i % len(tokens)], rooms[i % len(rooms)], rcvbuf=rcvbuf,
                                     timeout_s=timeout_s)
                except (OSError, ConnectionError, TimeoutError) as exc:
                    errors[str(exc)[:120]] += 1

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        return {"ok": n - sum(errors.values()), "failed": sum(errors.values()),
                "errors": dict(errors.most_common(3)), "secs": time.monotonic() - started}

    async def _open(self, token: str, rooms: list[str], *, since: tuple[str, int] | None = None,
                    rcvbuf: int = 0, timeout_s: float = 60.0) -> WsConn:
        """Connect, upgrade and join `rooms` (with `since`: resume); the connection joins self.conns."""
        loop = asyncio.get_running_loop()
        host, port = self.spec["host"], self.spec["port"]
        sock = socket.socket()
        try:
            sock.setblocking(False)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            await loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise

        def make() -> WsConn:
            conn = WsConn(self.dialect, self, host, port, token, rooms, time.monotonic_ns)
            conn.since = since
            return conn

        _, conn = await loop.create_connection(make, sock=sock)
        try:
            await asyncio.wait_for(conn.opened, timeout_s)
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()
            raise
        self.conns.append(conn)
        return conn

    async def cmd_reconnect(self, jitter_s: float) -> dict[str, Any]:
        self.reconnect_jitter_s = jitter_s
        self.rejoins = []
        self.rejoin_failures.clear()
        return {"conns": len(self.conns)}

    async def cmd_rejoined(self) -> dict[str, Any]:
        return {"conns": len(self.conns), "rejoins": len(self.rejoins),
                "last_at": max((t for t, _ in self.rejoins), default=None),
                "resumed": sum(1 for _, r in self.rejoins if r), "reset": sum(1 for _, r in self.rejoins if not r),
                "refused": sum(self.rejoin_failures.values()), "failures": dict(self.rejoin_failures.most_common(3))}

    async def cmd_start(self, rate: float = 0.0, depth: int = 0, key_prefix: str = "k") -> dict[str, Any]:
        self.sending, self.depth, self.key_prefix = True, depth, key_prefix
        if depth:
            for conn in self.conns:
                for _ in range(depth):
                    self._send(conn)
        elif rate > 0:
            self._spawn(self._pace(rate))
        return {}

    async def cmd_mark(self) -> dict[str, Any]:
        self._resolve_once()
        self.pending = []
        self.dropped_pending = 0
        self.hist, self.ack_hist = Hist(), Hist()
        self.delivered = self.acks = self.sent = self.throttled = 0
        self.errors.clear()
        self.seq_lo = self.seq_hi = None
        self.measuring = True
        self.window_start = (time.monotonic(), _cpu())
        return {}

    async def cmd_collect(self) -> dict[str, Any]:
        wall = time.monotonic() - self.window_start[0]
        cpu = _cpu() - self.window_start[1]
        self.measuring = False
        for _ in range(50):  # acks of the window's last gifts may still be on their way (≤ 0.5 s)
            self._resolve_once()
            if not self.pending:
                break
            await asyncio.sleep(0.01)
        return {
            "wall_s": wall, "cpu_s": cpu, "delivered": self.delivered,
            "hist": (self.hist.sparse(), self.hist.max_us),
            "unresolved": len(self.pending) + self.dropped_pending,
            "acks": self.acks, "ack_hist": (self.ack_hist.sparse(), self.ack_hist.max_us),
            "sent": self.sent, "throttled": self.throttled, "errors": dict(self.errors),
            "seq_lo": self.seq_lo, "seq_hi": self.seq_hi,
        }

    async def cmd_stop(self) -> dict[str, Any]:
        self.sending = False
        for _ in range(500):  # let in-flight gifts finish (bounded: 5 s)
            if not any(c.inflight for c in self.conns):
                break
            await asyncio.sleep(0.01)
        return {"inflight": sum(len(c.inflight) for c in self.conns), "acks_total": self.acks_total,
                "errors_total": dict(self.errors_total)}

    async def cmd_received(self, lo: int, hi: int) -> dict[str, Any]:
        counts = self.counts
        per_seq = [counts.get(s, 0) for s in range(lo, hi + 1)]
        return {"received": sum(per_seq), "min_per_seq": min(per_seq, default=0),
                "max_per_seq": max(per_seq, default=0),
                "last": counts.get(hi, 0), "conns": len(self.conns), "closed": dict(self.close_codes),
                "max_seq": max(counts, default=None)}

    async def cmd_await(self, lo: int, hi: int, n: int, within_s: float = 15.0) -> dict[str, Any]:
        """Answer once this worker's connections have received `n` room events with seqs lo..hi,
        counted as they arrive; after `within_s` with met False."""
        left = n - sum(self.counts.get(s, 0) for s in range(lo, hi + 1))
        met = left <= 0
        if not met:
            future = asyncio.get_running_loop().create_future()
            self.awaiting = [lo, hi, left, future]
            try:
                await asyncio.wait_for(future, within_s)
                met = True
            except TimeoutError:
                pass
            left, self.awaiting = self.awaiting[2], None
        return {"met": met, "received": n - max(left, 0)}

    async def cmd_stall(self) -> dict[str, Any]:
        """Stop reading on every connection of this worker (stalled clients)."""
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.pause_reading()
        return {"stalled": len(self.conns)}

    async def cmd_throttle(self, factor: float, measure_s: float = 1.0) -> dict[str, Any]:
        """Make every connection of this worker read `factor` times slower than the server sends.

        Each connection's incoming byte rate is measured over `measure_s` while it reads freely;
        from then on it may read rate / factor bytes per second: a token bucket whose credit the
        meter tops up every METER_TICK_S (never above one tick's worth, so no burst is saved up);
        `WsConn.data_received` pauses reading when the credit is spent and the meter resumes it.
        One read can overshoot by what the kernel holds (a 4 KiB receive buffer keeps that small):
        the debt is paid back before the next read, so the long-run rate stays at rate / factor."""
        conns = [c for c in self.conns if c.transport is not None]
        before = [c.bytes_in for c in conns]
        await asyncio.sleep(measure_s)
        budgets = [(conn, (conn.bytes_in - b) / measure_s / factor) for conn, b in zip(conns, before, strict=True)]
        for conn, _ in budgets:
            conn.credit = 0.0
        self._spawn(self._meter(budgets))
        full = sum(conn.bytes_in - b for conn, b in zip(conns, before, strict=True)) / measure_s / max(len(conns), 1)
        return {"throttled": len(conns), "full_bytes_per_s": full, "allowed_bytes_per_s": full / factor}

    async def _meter(self, budgets: list[tuple[WsConn, float]]) -> None:
        while any(conn.credit is not None for conn, _ in budgets):
            await asyncio.sleep(METER_TICK_S)
            for conn, rate in budgets:
                transport = conn.transport
                if conn.credit is None or transport is None or transport.is_closing():
                    continue
                conn.credit = min(conn.credit + rate * METER_TICK_S, rate * METER_TICK_S)
                if conn.credit > 0 and not transport.is_reading():
                    transport.resume_reading()

    async def cmd_unthrottle(self) -> dict[str, Any]:
        """Read freely again on every connection (stalled or throttled): to drain, then count."""
        for conn in self.conns:
            conn.credit = None
            if conn.transport is not None and not conn.transport.is_closing():
                conn.transport.resume_reading()
        return {"conns": len(self.conns)}

    async def cmd_ports(self) -> dict[str, Any]:
        """The local TCP ports of the open connections (the server side's peer ports)."""
        return {"ports": [c.transport.get_extra_info("sockname")[1] for c in self.conns
                          if c.transport is not None and not c.transport.is_closing()]}

    async def cmd_close(self) -> dict[str, Any]:
        for conn in self.conns:
            conn.close()
        self.conns = []
        return {}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._spawn(self._resolve_pending())

        async def handle(cmd: str, args: dict[str, Any]) -> None:
            try:
                reply = await getattr(self, f"cmd_{cmd}")(**args)
            except Exception as exc:  # reported to the harness, which fails the run
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            self.pipe.send(reply)

        def readable() -> None:
            try:
                cmd, args = self.pipe.recv()
            except EOFError:
                cmd, args = "exit", {}
            if cmd == "exit":
                if not done.done():
                    done.set_result(None)
                return
            self._spawn(handle(cmd, args))

        loop.add_reader(self.pipe.fileno(), readable)
        os.set_blocking(self.pipe.fileno(), True)  # uvloop made it non-blocking; recv() needs whole messages
        await done
        loop.remove_reader(self.pipe.fileno())
        for conn in self.conns:
            conn.close()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker_main(spec: dict[str, Any], pipe: Connection) -> None:
    import uvloop

    if spec.get("cpus"):
        os.sched_setaffinity(0, spec["cpus"])
    raise_nofile()
    uvloop.run(_Worker(spec, pipe).run())


class WorkerHandle:
    """The harness's side of one worker process."""

    def __init__(self, process: multiprocessing.process.BaseProcess, pipe: Connection) -> None:
        self.process = process
        self.pipe = pipe

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def send(self, cmd: str, **args: Any) -> None:
        self.pipe.send((cmd, args))

    def reply(self, timeout_s: float = 60.0) -> dict[str, Any]:
        if not self.pipe.poll(timeout_s):
            raise TimeoutError(f"load generator worker {self.pid} did not answer in {timeout_s} s")
        reply = self.pipe.recv()
        if "error" in reply:
            raise RuntimeError(f"load generator worker {self.pid}: {reply['error']}")
        return reply

    def call(self, cmd: str, timeout_s: float = 60.0, **args: Any) -> dict[str, Any]:
        self.send(cmd, **args)
        return self.reply(timeout_s)

    def stop(self) -> None:
        try:
            self.pipe.send(("exit", {}))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def start_worker(spec: dict[str, Any]) -> WorkerHandle:
    """Start one worker process. `spec`: host, port, dialect, room, shm_path, shm_cap, cpus."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    process = ctx.Process(target=_worker_main, args=(spec, theirs), daemon=True)
    process.start()
    theirs.close()
    return WorkerHandle(process, ours)
