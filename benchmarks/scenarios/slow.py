"""Scenario 6, slow consumers: 5% of the viewers (connected with a 4 KiB TCP receive buffer, a
poor mobile link) fall behind while the room keeps gifting. Two kinds, one room each:

- `stalled`: they stop reading altogether (`pause_reading`).
- `10x-slower`: each measures, over its first second of reading freely, the rate the room sends
  it bytes, then reads at a tenth of that (the load generator's `throttle`: a token bucket per
  connection, reading paused while its credit is spent).

Measured from the moment they fall behind: the server's RSS growth (peak - before), the other
viewers' gift-to-viewer p50/p99 meanwhile, and when the server let go of the slow ones:
- for giftcast, whose room snapshot (GET /v1/rooms/{creator}) counts the process's connections,
  the time until every slow viewer has left the room;
- for every target, once every slow viewer has been closed, the send time of the last gift any of
  them got (the senders' shared send-time table), from their drained deliveries (below): after
  it, nothing reached them (never sent, or discarded with the buffers of an aborted socket);
- for every target, the time until the server holds none of their TCP connections ESTABLISHED
  any more (/proc/net/tcp: closed or aborted; a close frame queued behind unread data keeps it).
giftcast drops a slow client by whichever comes first: the cut (4008) when its outbox passes
GIFTCAST_OUTBOX_LIMIT_BYTES, or its keepalive (a ping every 20 s, 20 s to answer: 1011), the
ping waiting behind everything already queued; it aborts a client that has not read its close
frame after the 5 s close timeout. The peers have no send bound; only a heartbeat can drop a
client: Socket.IO's (ping every 25 s, 20 s to answer) and, for pysio, uvicorn's WebSocket
keepalive (20 s, 20 s). The close codes the slow viewers read
when they drain (below) say which happened, if the close frame reached them before an abort
("reset": it did not; giftcast logs a warning for every 4008 cut).

Then the senders stop, the slow viewers read freely again to drain what is still buffered for
them, and their deliveries of the window's gifts are counted: fewer than gifts × slow viewers
means they lost events (giftcast: everything after the cut; a cut client resumes on reconnect,
which these do not). Their close codes say how they were dropped (none: still connected).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from benchmarks.harness import CREATOR, Bench, log
from benchmarks.loadgen import WorkerHandle, start_worker
from benchmarks.procs import established
from benchmarks.stats import Hist
from benchmarks.targets import TARGETS

__all__ = ["run"]

SENDERS = 4
FRACTION = 0.05
RCVBUF = 4096
SLOWER = 10  # the throttled kind reads this many times slower than the room sends
KINDS = ("stalled", f"{SLOWER}x-slower")  # also in the senders' idempotency keys: no spaces
DRAIN_S = 15.0


def _viewers_seen(port: int) -> int | None:
    try:
        return int(httpx.get(f"http://127.0.0.1:{port}/v1/rooms/{CREATOR}", timeout=5).json()["viewers"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None


def _drained(laggards: WorkerHandle, lo: int | None, hi: int | None) -> dict[str, Any]:
    """The slow viewers' deliveries of seqs lo..hi once they stop growing (reading freely)."""
    laggards.call("unthrottle")
    if lo is None or hi is None:
        return {"received": 0, "closed": {}}
    deadline = time.monotonic() + DRAIN_S
    got = laggards.call("received", lo=lo, hi=hi)
    while time.monotonic() < deadline and got["received"] < (hi - lo + 1) * got["conns"]:
        time.sleep(0.5)
        prev, got = got, laggards.call("received", lo=lo, hi=hi)
        if got["received"] == prev["received"]:
            break
    return got


def _one(bench: Bench, name: str, kind: str, viewers: int, rate: float, max_wait_s: float) -> dict[str, Any]:
    target = TARGETS[name]
    slow = max(1, round(viewers * FRACTION))
    with bench.room(target, viewers - slow, SENDERS) as room:
        assert room.sender is not None
        port = room.server.port
        laggards = start_worker(room._spec(port))
        room.viewers.append(laggards)  # measured and closed with the others
        laggards.call("connect", n=slow, tokens=bench.pop.viewer_tokens, rcvbuf=RCVBUF)
        ports = set(laggards.call("ports")["ports"])
        room.sender.call("start", rate=rate, key_prefix=f"s.{name}.{kind}.{time.time_ns()}")
        time.sleep(2.0)
        rss0 = room.server.stats.rss_bytes()
        before = _viewers_seen(port) if target.kind == "giftcast" else None
        room.broadcast("mark")
        if kind == "stalled":
            laggards.call("stall")
            reading = {"full_bytes_per_s": None, "allowed_bytes_per_s": 0.0}
        else:
            reading = laggards.call("throttle", factor=SLOWER)  # reads freely for its first second
        t0 = time.monotonic()
        peak, left_s, closed_s = rss0, None, None
        while time.monotonic() - t0 < max_wait_s:
            peak = max(peak, room.server.stats.rss_bytes())
            if before is not None and left_s is None:
                seen = _viewers_seen(port)
                if seen is not None and seen <= before - len(ports):
                    left_s = time.monotonic() - t0
            if closed_s is None and established(port, ports) == 0:
                closed_s = time.monotonic() - t0
            if closed_s is not None and (before is None or left_s is not None):
                break
            time.sleep(0.25)
        watched = time.monotonic() - t0
        parts = room.broadcast("collect")
        room.sender.call("stop", timeout_s=30)
        got = _drained(laggards, parts[0]["seq_lo"], parts[0]["seq_hi"])
    fast = Hist.merged(p["hist"] for p in parts[:-1]).summary()  # every worker but the laggards
    lo, hi = parts[0]["seq_lo"], parts[0]["seq_hi"]
    gifts = hi - lo + 1 if lo is not None and hi is not None else 0
    cell = {"target": name, "target_kind": target.kind, "kind": kind, "viewers": viewers, "slow": len(ports), "rate": rate,
            "slow_full_bytes_per_s": reading["full_bytes_per_s"], "slow_read_bytes_per_s": reading["allowed_bytes_per_s"],
            "rss_growth_mib": (peak - rss0) / 2**20, "fast_p50_ms": fast["p50_ms"], "fast_p99_ms": fast["p99_ms"],
            "left_room_after_s": left_s, "sockets_closed_after_s": closed_s, "watched_s": watched,
            "gifts": gifts, "slow_received": got["received"], "slow_expected": gifts * len(ports),
            "slow_closed": got["closed"]}
    cell["slow_lost_events"] = cell["slow_received"] < cell["slow_expected"]
    last_sent = bench.times.get(got["max_seq"]) if got.get("max_seq") is not None else None
    all_closed = sum(got["closed"].values()) >= len(ports)
    cell["stopped_sending_after_s"] = last_sent / 1e9 - t0 if all_closed and last_sent is not None else None
    log(f"slow: {name} {kind}: {len(ports)} slow of {viewers}; RSS +{cell['rss_growth_mib']:.1f} MiB, fast p99 "
        f"{cell['fast_p99_ms']} ms, left the room after {left_s}, last event reached them after "
        f"{cell['stopped_sending_after_s']}, sockets closed after {closed_s} s "
        f"(watched {watched:.0f} s); slow ones got {got['received']}/{cell['slow_expected']}, closes {got['closed']}")
    return cell


def _when(seconds: float | None, cell: dict[str, Any]) -> float | str:
    return round(seconds, 1) if seconds is not None else f"not within {cell['watched_s']:.0f} s"


def _sent_until(cell: dict[str, Any]) -> float | str:
    seconds = cell["stopped_sending_after_s"]
    return round(seconds, 1) if seconds is not None else "still connected"


def _read_rate(cell: dict[str, Any]) -> str:
    if cell["slow_full_bytes_per_s"] is None:
        return "0 (stalled)"
    return f"{cell['slow_read_bytes_per_s'] / 1e3:.1f}k of {cell['slow_full_bytes_per_s'] / 1e3:.1f}k"


def _closes(closed: dict[str, int]) -> str:
    return ", ".join(f"{'reset' if code in ('None', None) else code} ×{n}" for code, n in closed.items()) or "none"


def run(bench: Bench, *, targets: list[str], viewers: int, rate: float, max_wait_s: float) -> dict[str, Any]:
    cells = [_one(bench, name, kind, viewers, rate, max_wait_s) for name in targets for kind in KINDS]
    head = ["target", "slow ones", "viewers", "slow", "gifts/s", "slow ones read B/s", "RSS growth MiB",
            "fast p50 ms", "fast p99 ms", "slow ones left the room after s", "last event reached them after s",
            "server closed their sockets after s",
            "slow ones got (events / gifts × slow)", "slow ones' close codes"]
    rows = [[c["target"], c["kind"], str(c["viewers"]), str(c["slow"]), f"{c['rate']:g}", _read_rate(c),
             c["rss_growth_mib"], c["fast_p50_ms"], c["fast_p99_ms"],
             _when(c["left_room_after_s"], c) if c["target_kind"] == "giftcast" else "n/a",
             _sent_until(c), _when(c["sockets_closed_after_s"], c), f"{c['slow_received']}/{c['slow_expected']}",
             _closes(c["slow_closed"])] for c in cells]
    return {"title": f"Scenario 6: slow consumers ({100 * FRACTION:g}% stop reading or read {SLOWER}× slower, "
                     f"{RCVBUF} B receive buffer)",
            "cells": cells, "table": [head, *rows],
            "notes": ["", f"`{SLOWER}x-slower`: each slow viewer measured the bytes/s the room sent it over 1 s, then "
                      f"read at a tenth of that (token bucket, {RCVBUF} B receive buffer). 'slow ones got': their "
                      "deliveries of the window's gifts after the senders stopped and they read freely to drain; "
                      "'reset': the socket was aborted, no close frame read."]}
