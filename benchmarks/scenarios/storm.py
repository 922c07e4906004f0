"""Scenario 7, reconnect storm: a hub process restarts under its viewers while gifts go on.

Two processes of the target on the harness's Valkey: every viewer is on process A, the senders
on B gift at a fixed rate throughout (50 gifts/s, fewer in big rooms: at most 50k deliveries/s).
A gets SIGTERM (giftcast closes its viewers with 1012 "restart"; the peers close theirs as their
process exits) and is started again on the same port; each viewer reconnects after a random
delay (uniform 0 to `jitter_s`), retrying every 0.1–0.5 s while A refuses connections, and
rejoins: giftcast's with `since` (its last event's epoch and seq), the peers' with a plain
Socket.IO join (the socketio dialect has no resume).

Reported: how long A was gone (SIGTERM to listening again), the time from SIGTERM until the last
viewer was back, resumed vs reset joins, refused attempts, the history reads (XRANGE/XREVRANGE)
Redis served for the storm, and the gifts recovered: every gift acked in the window should reach
every viewer exactly once (deliveries per seq: min = max = viewers), and the mean number each
viewer missed. The peers (pysio, node: their processes share the Valkey through the Redis
adapter) keep no room history, so their viewers miss what was sent while they were away: their
cells report that loss (exactly once: False) and the run goes on.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Bench, Room, log
from benchmarks.loadgen import start_worker
from benchmarks.targets import TARGETS

__all__ = ["run"]

SENDERS = 2
MAX_RATE = 50.0  # gifts/s, all through process B ...
MAX_DELIVERIES = 50_000  # ... but at most this many deliveries/s: the generator must keep up, or
# the server cuts its viewers as slow (4008) and they storm again, measuring the generator


def rate_for(viewers: int) -> float:
    return min(MAX_RATE, MAX_DELIVERIES / viewers)


def _wait_all_back(room: Room, viewers: int, timeout_s: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        states = room.broadcast("rejoined")
        if sum(s["conns"] for s in states) >= viewers or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


def _drained(got: dict[str, Any], resumes: bool) -> bool:
    """Every connection of a worker has the window's last gift, and, where viewers resume, every gift."""
    return got["last"] >= got["conns"] and (not resumes or got["min_per_seq"] >= got["conns"])


def _storm(bench: Bench, name: str, viewers: int, jitter_s: float, warmup_s: float) -> dict[str, Any]:
    target = TARGETS[name]
    resumes = target.dialect != "socketio"  # a Socket.IO rejoin cannot ask for what it missed
    bench.times.clear()
    a = target.start(bench.ctx)
    b = target.start(bench.ctx)
    servers = [a, b]
    sender = None
    try:
        room = Room(bench, target, [a])
        try:
            log(f"storm: {name}: {viewers} viewers on A, {SENDERS} senders on B")
            room.connect(viewers, 0, 50, kind="py")  # reconnect/rejoined: Python workers only
            sender = start_worker(room._spec(b.port))
            sender.call("connect", n=SENDERS, tokens=bench.pop.sender_tokens[:SENDERS])
            sender.call("start", rate=rate_for(viewers), key_prefix=f"storm.{name}.{time.time_ns()}")
            time.sleep(warmup_s)
            sender.call("mark")
            room.broadcast("reconnect", jitter_s=jitter_s)
            calls0 = bench.valkey.calls_by_command()
            killed = time.monotonic()
            a.stop()
            down = time.monotonic()
            a = target.start(bench.ctx, port=a.port, tag="-restarted")
            servers[0] = a
            up = time.monotonic()
            cpu0 = a.stats.cpu_s()
            states = _wait_all_back(room, viewers, timeout_s=jitter_s + 120)
            back = max((s["last_at"] or 0.0 for s in states), default=0.0)
            cpu_rejoin = a.stats.cpu_s() - cpu0
            calls = {k: n - calls0.get(k, 0) for k, n in bench.valkey.calls_by_command().items()}
            time.sleep(2.0)  # gifts after everyone is back, too
            window = sender.call("collect")
            stopped = sender.call("stop", timeout_s=30)
            lo, hi = window["seq_lo"], window["seq_hi"]
            deadline = time.monotonic() + 15
            while True:  # the room drains: replays and live events still arriving
                got = room.broadcast("received", lo=lo, hi=hi)
                if all(_drained(g, resumes) for g in got) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            room.close()
    finally:
        if sender is not None:
            sender.stop()
        for server in servers:
            server.stop()
    gifts = hi - lo + 1 if lo is not None and hi is not None else 0
    received = sum(g["received"] for g in got)
    cell = {
        "target": name, "viewers": viewers, "jitter_s": jitter_s, "rate": rate_for(viewers),
        "stop_s": down - killed, "restart_s": up - killed, "all_back_s": back - killed if back else None,
        "rejoins": sum(s["rejoins"] for s in states), "back": sum(s["conns"] for s in states),
        "resumed": sum(s["resumed"] for s in states), "reset": sum(s["reset"] for s in states),
        "refused_attempts": sum(s["refused"] for s in states),
        "failures": [s["failures"] for s in states if s["failures"]],
        "history_reads": calls.get("xrange", 0) + calls.get("xrevrange", 0),
        "server_cpu_s_rejoin": cpu_rejoin,
        "gifts": gifts, "acked": window["acks"], "errors": stopped["errors_total"],
        "deliveries": received, "expected": gifts * viewers,
        "missed_per_viewer": (gifts * viewers - received) / viewers,
        "per_worker": [{k: g[k] for k in ("conns", "min_per_seq", "max_per_seq", "received")} for g in got],
    }
    # per worker process: every seq reached each of its connections once (and no seq more often)
    cell["exactly_once"] = (all(g["min_per_seq"] == g["max_per_seq"] == g["conns"] for g in got)
                            and sum(g["conns"] for g in got) == viewers and received == gifts * viewers)
    log(f"storm: {name} {viewers}: A down {cell['restart_s']:.1f} s, all back after "
        f"{cell['all_back_s'] or float('nan'):.1f} s ({cell['resumed']} resumed, {cell['reset']} reset, "
        f"{cell['refused_attempts']} refused attempts, {cell['history_reads']} history reads); "
        f"{received}/{gifts * viewers} deliveries, exactly once: {cell['exactly_once']}")
    return cell


def run(bench: Bench, *, targets: list[str], sizes: list[int], jitter_s: float, warmup_s: float) -> dict[str, Any]:
    cells = []
    for name in targets:
        for viewers in sizes:
            try:
                cells.append(_storm(bench, name, viewers, jitter_s, warmup_s))
            except Exception as exc:  # recorded, so one failed cell does not lose the run
                log(f"storm: {name} {viewers}: failed: {exc}")
                cells.append({"target": name, "viewers": viewers, "failed": str(exc)[:300]})
    rows = [[c["target"], c["viewers"], "failed: " + c["failed"]] + [""] * 11 if "failed" in c else
            [c["target"], c["viewers"], c["rate"], c["jitter_s"], round(c["restart_s"], 2),
             None if c["all_back_s"] is None else round(c["all_back_s"], 2), f"{c['back']}/{c['viewers']}",
             c["resumed"], c["reset"], c["refused_attempts"], c["history_reads"],
             f"{c['deliveries']}/{c['expected']}", round(c["missed_per_viewer"], 1), c["exactly_once"]]
            for c in cells]
    return {"cells": cells, "senders": SENDERS,
            "title": "Scenario 7: reconnect storm (process A restarted under its viewers; gifts via B)",
            "table": [["target", "viewers", "gifts/s", "jitter s", "A gone s (SIGTERM → listening)", "all back after s",
                       "back", "resumed", "reset", "refused attempts", "history reads",
                       "deliveries / gifts × viewers", "gifts missed per viewer", "every gift exactly once"], *rows],
            "notes": ["", "giftcast's viewers rejoin with `since`; the gifts acked from just before the restart "
                      "until 2 s after the last viewer was back must each reach every viewer exactly once. The "
                      "peers' viewers rejoin with a plain Socket.IO join (no resume: counted as reset) and miss "
                      "what was sent while they were away."]}
