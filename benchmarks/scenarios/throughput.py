"""Scenario 1, gift throughput: how many gifts per second go end to end.

Sender connections keep `depth` gifts in flight each (closed loop): frame in, validation,
`send_gift.lua` on Valkey, event published, ack out. Reported per target: acked gifts/s,
ack latency p50/p99, server CPU µs per gift, Valkey CPU µs per gift. Beside it, in the same run,
the raw capacity of the same script on the same Valkey (benchmarks/rawlua.py, pipelined
EVALSHA, no server in the path), and the ratio.

Balances reconcile exactly afterwards: the creator's diamonds grew by exactly the number of
acked gifts (1 rose = 1 coin = 1 diamond) and the senders' coins shrank by as much, read through
the public HTTP API (room snapshot, wallets); `python -m server audit` runs at the end of the
whole benchmark.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import httpx

from benchmarks import rawlua, setup
from benchmarks.harness import CREATOR, Bench, log
from benchmarks.stats import Hist, median
from benchmarks.targets import TARGETS

__all__ = ["run"]

SENDERS = 16
DEPTH = 16  # giftcast's per-connection limit (ws_transport.MAX_INFLIGHT): 16 × 16 = 256 gifts in flight


def _creator_diamonds(bench: Bench) -> int:
    reply = httpx.get(f"{bench.base_url}/v1/rooms/{CREATOR}", timeout=30)
    reply.raise_for_status()
    return int(reply.json()["creator_diamonds"])


def _coins(bench: Bench) -> int:
    return sum(setup.wallet(bench.base_url, t)["coins"] for t in bench.pop.sender_tokens)


def _target_runs(bench: Bench, name: str, runs: int, warmup_s: float, measure_s: float) -> dict[str, Any]:
    target = TARGETS[name]
    diamonds0, coins0 = _creator_diamonds(bench), _coins(bench)
    out: list[dict[str, Any]] = []
    with bench.room(target, 0, SENDERS) as room:
        assert room.sender is not None
        for i in range(runs):
            room.sender.call("start", depth=DEPTH, key_prefix=f"t{i}.{name}")
            time.sleep(warmup_s)
            w = room.window(measure_s)
            stopped = room.sender.call("stop", timeout_s=30)
            part, wall = w["parts"][0], w["wall_s"]
            acks = part["acks"]
            ack = Hist.merged([part["ack_hist"]]).summary()
            out.append({
                "gifts_per_s": acks / wall, "ack_p50_ms": ack["p50_ms"], "ack_p99_ms": ack["p99_ms"],
                "server_cpu_us_per_gift": w["server_cpu_s"] / acks * 1e6 if acks else None,
                "valkey_cpu_us_per_gift": w["valkey_cpu_s"] / acks * 1e6 if acks else None,
                "server_cpu_pct": 100 * w["server_cpu_s"] / wall, "valkey_cpu_pct": 100 * w["valkey_cpu_s"] / wall,
                "generator_busy": (part["cpu_s"] + w["valkey_cpu_s"]) / wall / len(bench.placement.generator),
                # whole cores from /proc/stat (softirq included): what limits a closed loop
                "server_core_busy": w["server_core_busy"], "generator_core_busy": w["generator_core_busy"],
                "errors": part["errors"],
                # Redis commands the server ran per acked gift (INFO commandstats; includes the
                # harness's own INFO calls, a handful per window)
                "valkey_calls_per_gift": {k: round(n / acks, 3) for k, n in w["valkey_calls"].items()} if acks else {},
            })
        acks_total, errors_total = stopped["acks_total"], stopped["errors_total"]
    d_diamonds, d_coins = _creator_diamonds(bench) - diamonds0, coins0 - _coins(bench)
    unknown = errors_total.get("unavailable", 0)  # outcome unknown: may or may not have applied
    cell = {"target": name, "runs": out, "acks_total": acks_total, "errors_total": errors_total,
            "diamonds_credited": d_diamonds, "coins_debited": d_coins,
            "reconciled": d_diamonds == d_coins and acks_total <= d_diamonds <= acks_total + unknown}
    for key in ("gifts_per_s", "ack_p50_ms", "ack_p99_ms", "server_cpu_us_per_gift", "valkey_cpu_us_per_gift",
                "server_cpu_pct", "valkey_cpu_pct", "generator_busy", "server_core_busy", "generator_core_busy"):
        cell[key] = median(r[key] for r in out)
    log(f"throughput: {name}: {cell['gifts_per_s']:.0f} gifts/s, ack p99 {cell['ack_p99_ms']} ms, "
        f"server {cell['server_cpu_us_per_gift'] or 0:.0f} µs/gift, reconciled={cell['reconciled']}")
    return cell


def _raw_runs(bench: Bench, runs: int, warmup_s: float, measure_s: float, connections: int,
              depth: int) -> dict[str, Any]:
    diamonds0 = _creator_diamonds(bench)
    ctx = multiprocessing.get_context("spawn")
    out = []
    total = 0
    for _ in range(runs):
        v0, t0 = bench.valkey.stats.cpu_s(), time.monotonic()
        with ctx.Pool(1) as pool:
            r = pool.apply(rawlua.measure, (bench.valkey.url, bench.pop.sender_ids, CREATOR), {
                "connections": connections, "depth": depth, "warmup_s": warmup_s, "seconds": measure_s,
                "cpus": list(bench.placement.generator)})
        r["valkey_cpu_pct"] = 100 * (bench.valkey.stats.cpu_s() - v0) / (time.monotonic() - t0)
        total += r["total_ok"]
        out.append(r)
    cell = {"target": "raw-lua", "runs": out, "gifts_per_s": median(r["ok_per_s"] for r in out),
            "client_cpu": median(r["client_cpu"] for r in out),
            "diamonds_credited": _creator_diamonds(bench) - diamonds0, "acks_total": total}
    cell["reconciled"] = cell["diamonds_credited"] == total
    log(f"throughput: raw send_gift.lua: {cell['gifts_per_s']:.0f} calls/s "
        f"(client {100 * cell['client_cpu']:.0f}% cpu), reconciled={cell['reconciled']}")
    return cell


def run(bench: Bench, *, targets: list[str], runs: int, warmup_s: float, measure_s: float,
        raw_connections: int = 4, raw_depth: int = 32) -> dict[str, Any]:
    raw = matched = None
    if not bench.cluster:  # on a cluster a gift is two scripts in two slots: no single raw script
        raw = _raw_runs(bench, runs, warmup_s, measure_s, raw_connections, raw_depth)
        # The same script at the load generator's concurrency (SENDERS × DEPTH in flight): separates
        # what the servers add from what a deeper pipeline buys on Valkey (appendfsync always batches).
        matched = _raw_runs(bench, runs, warmup_s, measure_s, SENDERS, DEPTH)
    cells = [_target_runs(bench, name, runs, warmup_s, measure_s) for name in targets]
    # The raw capacity: the better of the two raw runs.
    capacity = max(raw["gifts_per_s"], matched["gifts_per_s"]) if raw and matched else None
    for cell in cells:
        cell["ratio_to_raw"] = cell["gifts_per_s"] / capacity if capacity else None
        cell["ratio_to_raw_matched"] = (cell["gifts_per_s"] / matched["gifts_per_s"]
                                        if matched and matched["gifts_per_s"] else None)
    return {"raw": raw, "raw_matched": matched, "raw_capacity": capacity, "targets": cells, "senders": SENDERS, "depth": DEPTH}
