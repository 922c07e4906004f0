"""Scenario 6, slow consumers: 5% of the viewers (connected with a 4 KiB TCP receive buffer, a
poor mobile link) stop reading while the room keeps gifting.

Measured from the moment they stall: the server's RSS growth (peak - before), the other viewers'
gift-to-viewer p50/p99 over the stall, and — for giftcast, whose room snapshot
(GET /v1/rooms/{creator}) counts the process's connections — the time until the server has
dropped every stalled viewer (cut with 4008 when its outbox passes GIFTCAST_OUTBOX_LIMIT_BYTES,
aborted if the close does not complete). The peers have no send bound: their memory grows until
the Socket.IO heartbeat (ping every 25 s, 20 s timeout) gives up on the stalled clients.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from benchmarks.harness import CREATOR, Bench, log
from benchmarks.loadgen import start_worker
from benchmarks.stats import Hist
from benchmarks.targets import TARGETS

__all__ = ["run"]

SENDERS = 4
FRACTION = 0.05
RCVBUF = 4096


def _viewers_seen(port: int) -> int | None:
    try:
        return int(httpx.get(f"http://127.0.0.1:{port}/v1/rooms/{CREATOR}", timeout=5).json()["viewers"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None


def _one(bench: Bench, name: str, viewers: int, rate: float, max_wait_s: float) -> dict[str, Any]:
    target = TARGETS[name]
    slow = max(1, round(viewers * FRACTION))
    with bench.room(target, viewers - slow, SENDERS) as room:
        assert room.sender is not None
        laggards = start_worker(room._spec(room.server.port))
        room.viewers.append(laggards)  # measured and closed with the others
        laggards.call("connect", n=slow, tokens=bench.pop.viewer_tokens, rcvbuf=RCVBUF)
        room.sender.call("start", rate=rate, key_prefix=f"s.{name}")
        time.sleep(2.0)
        rss0 = room.server.stats.rss_bytes()
        before = _viewers_seen(room.server.port) if target.kind == "giftcast" else None
        room.broadcast("mark")
        stalled = laggards.call("stall")["stalled"]
        t0 = time.monotonic()
        peak, cut_s = rss0, None
        while time.monotonic() - t0 < max_wait_s:
            peak = max(peak, room.server.stats.rss_bytes())
            if before is not None and cut_s is None:
                seen = _viewers_seen(room.server.port)
                if seen is not None and seen <= before - stalled:
                    cut_s = time.monotonic() - t0
                    break
            time.sleep(0.25)
        parts = room.broadcast("collect")
        room.sender.call("stop", timeout_s=30)
    fast = Hist.merged(p["hist"] for p in parts[:-1]).summary()  # every worker but the laggards
    cell = {"target": name, "viewers": viewers, "stalled": stalled, "rate": rate,
            "rss_growth_mib": (peak - rss0) / 2**20, "fast_p50_ms": fast["p50_ms"], "fast_p99_ms": fast["p99_ms"],
            "cut_after_s": cut_s, "watched_s": time.monotonic() - t0}
    log(f"slow: {name}: {stalled} stalled of {viewers}; RSS +{cell['rss_growth_mib']:.1f} MiB, fast p99 "
        f"{cell['fast_p99_ms']} ms, cut after {cut_s if cut_s is not None else 'not within'} s")
    return cell


def run(bench: Bench, *, targets: list[str], viewers: int, rate: float, max_wait_s: float) -> dict[str, Any]:
    cells = [_one(bench, name, viewers, rate, max_wait_s) for name in targets]
    head = ["target", "viewers", "stalled", "gifts/s", "RSS growth MiB", "fast p50 ms", "fast p99 ms",
            "stalled ones dropped after s"]
    rows = [[c["target"], str(c["viewers"]), str(c["stalled"]), f"{c['rate']:g}", c["rss_growth_mib"],
             c["fast_p50_ms"], c["fast_p99_ms"],
             c["cut_after_s"] if c["cut_after_s"] is not None else f"not within {c['watched_s']:.0f} s"]
            for c in cells]
    return {"title": f"Scenario 6: slow consumers ({100 * FRACTION:g}% stop reading, {RCVBUF} B receive buffer)",
            "cells": cells, "table": [head, *rows]}
