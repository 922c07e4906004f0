"""Scenario 4, many rooms: R rooms × 10 viewers on two server processes, every room's viewers
on one process (room r on process r % 2, as a room-affinity balancer would place them).

Senders gift into rooms of process A three times as often as into rooms of process B. Each
process needs only its own rooms' events; what it receives is read from Valkey: the bytes sent
to the process's pub/sub connection(s) (CLIENT LIST tot-net-out, matched to the process by its
sockets), divided by the size of one room message (calibrated by gifting into one of A's
rooms alone first). giftcast subscribes one channel per room with local members, so it should
receive nothing it does not need; Socket.IO's Redis adapter pattern-subscribes every room of the
namespace and python-socketio's manager uses one channel for everything.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx

from benchmarks.harness import Bench, log
from benchmarks.loadgen import WorkerHandle, start_worker
from benchmarks.procs import local_ports
from benchmarks.targets import TARGETS

__all__ = ["run"]

VIEWERS_PER_ROOM = 10
SENDERS_PER_PROCESS = 4
ROOMS_PER_SENDER = 8
RATE_A, RATE_B = 60.0, 20.0


def open_rooms(bench: Bench, count: int) -> list[str]:
    """Creators benchroom-0000.. with their lives open (public HTTP API), once per benchmark."""
    names = [f"benchroom-{i:04d}" for i in range(count)]

    def open_one(name: str) -> None:
        with httpx.Client(base_url=bench.base_url, timeout=30) as client:
            token = client.post("/dev/tokens", json={"user_id": name, "role": "creator"}).json()["token"]
            client.post("/v1/live/open", headers={"authorization": f"Bearer {token}"}).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(open_one, names))
    return names


def _bytes_by_process(bench: Bench, pids: list[int]) -> list[int]:
    by_port = bench.valkey.pubsub_bytes_by_port()
    return [sum(n for port, n in by_port.items() if port in local_ports(pid)) for pid in pids]


def _gift_for(sender: WorkerHandle, rate: float, seconds: float, tag: str) -> int:
    """Gift at `rate` for `seconds`; returns how many were acked."""
    before = sender.call("stop")["acks_total"]
    sender.call("start", rate=rate, key_prefix=tag)
    time.sleep(seconds)
    return sender.call("stop", timeout_s=30)["acks_total"] - before


def _one(bench: Bench, name: str, rooms: list[str], seconds: float) -> dict[str, Any]:
    target = TARGETS[name]
    servers = [target.start(bench.ctx), target.start(bench.ctx)]
    workers: list[WorkerHandle] = []
    try:
        spec = {"host": "127.0.0.1", "dialect": target.dialect, "room": rooms[0], "shm_path": str(bench.times.path),
                "shm_cap": bench.times.cap, "cpus": list(bench.placement.generator)}
        senders = []
        for p, server in enumerate(servers):
            mine = rooms[p::2]
            viewers = start_worker({**spec, "port": server.port})
            workers.append(viewers)
            viewers.call("connect", n=len(mine) * VIEWERS_PER_ROOM, tokens=bench.pop.viewer_tokens,
                         rooms=[[r] for r in mine], concurrency=25, timeout_s=300)
            sender = start_worker({**spec, "port": server.port})
            workers.append(sender)
            per = min(ROOMS_PER_SENDER, len(mine))
            active = [[mine[(i * per + j) % len(mine)] for j in range(per)] for i in range(SENDERS_PER_PROCESS)]
            sender.call("connect", n=SENDERS_PER_PROCESS, tokens=bench.pop.sender_tokens[p::2], rooms=active)
            senders.append(sender)
        pids = [s.pid for s in servers]
        b0 = _bytes_by_process(bench, pids)
        calibration = _gift_for(senders[0], RATE_A, 1.0, f"r.cal.{name}")
        time.sleep(0.5)
        b1 = _bytes_by_process(bench, pids)
        size = (b1[0] - b0[0]) / calibration
        cpu0 = [s.stats.cpu_s() for s in servers]
        senders[0].call("start", rate=RATE_A, key_prefix=f"r.a.{name}")
        senders[1].call("start", rate=RATE_B, key_prefix=f"r.b.{name}")
        time.sleep(seconds)
        sent = [s.call("stop", timeout_s=30)["acks_total"] for s in senders]
        time.sleep(0.5)
        b2 = _bytes_by_process(bench, pids)
        cpu = [s.stats.cpu_s() - c for s, c in zip(servers, cpu0, strict=True)]
    finally:
        for w in workers:
            w.stop()
        for s in servers:
            s.stop()
    gifts = [sent[0] - calibration, sent[1]]  # acks_total is cumulative; A's included the calibration
    rows = []
    for p in range(2):
        received = (b2[p] - b1[p]) / size
        rows.append({"process": "AB"[p], "rooms": len(rooms[p::2]), "needed": gifts[p],
                     "received": round(received), "unneeded": max(0, round(received - gifts[p])),
                     "server_cpu_s": cpu[p]})
    log(f"rooms: {name}: " + "; ".join(f"{r['process']} received {r['received']} needed {r['needed']}" for r in rows))
    return {"target": name, "message_bytes": size, "processes": rows}


def run(bench: Bench, *, targets: list[str], rooms: int, seconds: float) -> dict[str, Any]:
    names = open_rooms(bench, rooms)
    cells = [_one(bench, name, names, seconds) for name in targets]
    head = ["target", "process", "rooms", "room messages needed", "received", "received but not needed",
            "server CPU s"]
    table = [[c["target"], r["process"], str(r["rooms"]), r["needed"], r["received"], r["unneeded"],
              r["server_cpu_s"]] for c in cells for r in c["processes"]]
    return {"title": f"Scenario 4: {rooms} rooms × {VIEWERS_PER_ROOM} viewers on two processes "
                     f"({RATE_A:g} + {RATE_B:g} gifts/s for {seconds:g} s)",
            "cells": cells, "table": [head, *table],
            "notes": ["Messages counted from Valkey's bytes to each process's pub/sub connection(s) ÷ the "
                      "size of one room message (calibrated per target)."]}
