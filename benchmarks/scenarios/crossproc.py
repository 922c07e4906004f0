"""Scenario 5, cross-process: the sender on process A, viewers on A and on B (same room, same
Valkey). The latency B's viewers see minus the latency A's viewers see is what crossing
processes adds; Valkey's PUBLISH count over the window divided by the gifts is the publishes
per gift, PUBLISH and SPUBLISH counted together (giftcast: the script's one; the peers: the
script's, which nobody reads, plus their adapter's).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Bench, log
from benchmarks.stats import Hist, median
from benchmarks.targets import TARGETS

__all__ = ["run"]

SENDERS = 2
RATE = 50.0


def _one(bench: Bench, name: str, viewers: int, runs: int, warmup_s: float, measure_s: float) -> dict[str, Any]:
    out = []
    with bench.room(TARGETS[name], viewers, SENDERS, processes=2) as room:
        assert room.sender is not None
        for i in range(runs):
            room.sender.call("start", rate=RATE, key_prefix=f"x{i}.{name}")
            time.sleep(warmup_s)
            w = room.window(measure_s)
            room.sender.call("stop", timeout_s=30)
            sender, on_a, on_b = w["parts"][0], w["parts"][1], w["parts"][2]
            a = Hist.merged([on_a["hist"]]).summary()
            b = Hist.merged([on_b["hist"]]).summary()
            out.append({"a_p50_ms": a["p50_ms"], "a_p99_ms": a["p99_ms"], "b_p50_ms": b["p50_ms"],
                        "b_p99_ms": b["p99_ms"], "added_p50_ms": _sub(b["p50_ms"], a["p50_ms"]),
                        "added_p99_ms": _sub(b["p99_ms"], a["p99_ms"]),
                        "publishes_per_gift": w["publishes"] / sender["acks"] if sender["acks"] else None})
    cell: dict[str, Any] = {"target": name, "viewers_per_process": viewers // 2, "rate": RATE, "runs": out}
    for key in out[0]:
        cell[key] = median(r[key] for r in out)
    log(f"crossproc: {name}: +{cell['added_p50_ms']} ms p50, +{cell['added_p99_ms']} ms p99 on the other "
        f"process; {cell['publishes_per_gift']} PUBLISH per gift")
    return cell


def _sub(b: float | None, a: float | None) -> float | None:
    return None if a is None or b is None else b - a


def run(bench: Bench, *, targets: list[str], viewers: int, runs: int, warmup_s: float,
        measure_s: float) -> dict[str, Any]:
    cells = [_one(bench, name, viewers, runs, warmup_s, measure_s) for name in targets]
    head = ["target", "viewers per process", "gifts/s", "p50 same process ms", "p50 other process ms",
            "added p50 ms", "added p99 ms", "PUBLISH per gift"]
    rows = [[c["target"], str(c["viewers_per_process"]), f"{c['rate']:g}", c["a_p50_ms"], c["b_p50_ms"],
             c["added_p50_ms"], c["added_p99_ms"], c["publishes_per_gift"]] for c in cells]
    return {"title": "Scenario 5: cross-process (sender on A; viewers on A and B)", "cells": cells,
            "table": [head, *rows]}
