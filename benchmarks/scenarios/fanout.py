"""Scenario 2, fan-out (and scenario 3, connections, measured on the same connect).

One room of N viewers plus the sender connections; the senders gift at a fixed rate (open
loop). Per (target, N, rate), `runs` times: warm up, measure a window, stop, wait for the last
event to reach everyone, then count loss over the window's seqs. Reported per run and as the
median of the runs the generator did not saturate:

- deliveries/s: gift events received per second over all connections, in the window;
- latency p50/p99/max: gift sent (sender's clock) → event received (viewer's clock);
- loss: 1 - deliveries / (members × gifts acked in the window), counted after draining;
- server CPU µs per delivery: the server process's utime+stime over the window / deliveries;
- generator busy: how busy the generator's cores were (/proc/stat): its workers, Valkey when
  it shares them, the kernel's work for what they send. Runs at >= 90% are discarded.

A rate whose median delivers less than half the offered load ends that (target, N): higher
rates are skipped and said so. So is a rate whose offered deliveries (gifts/s × members) exceed
MAX_OFFERED (per kind of viewer worker): far beyond what the generator reads on its core (Python
workers ~50–100k frames/s at ~3.2 µs each; a C worker process read 500k/s at 14% of a core, 0.28 µs
each, and the floor delivered ~1M/s to two of them with the generator core ~100% busy: Valkey and
the kernel's loopback work share it), its workers stop answering the harness instead of
measuring anything. A saturated generator only flags the cell (on a shared machine
other people's work on the generator's core counts too).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Bench, Room, log
from benchmarks.stats import Hist, median
from benchmarks.targets import TARGETS

__all__ = ["run"]

SENDERS = 8
GEN_SATURATED = 0.9
DRAIN_S = 5.0
MAX_OFFERED = {"py": 400_000, "c": 2_000_000}  # deliveries/s, by Bench.viewers (C: 2x what was measured)
MAX_SERVER_RSS = 3 * 2**30  # a server buffering without bound is stopped before it eats the machine


def _one_run(bench: Bench, room: Room, rate: float, warmup_s: float, measure_s: float, tag: str) -> dict[str, Any]:
    assert room.sender is not None
    room.sender.call("start", rate=rate, key_prefix=tag)
    time.sleep(warmup_s)
    w = room.window(measure_s)
    room.sender.call("stop", timeout_s=30)
    sender = w["parts"][0]
    delivered = sum(p["delivered"] for p in w["parts"])
    gen_cpu = sum(p["cpu_s"] for p in w["parts"])
    lo, hi = sender["seq_lo"], sender["seq_hi"]
    loss = None
    closed: dict[str, int] = {}
    if lo is not None and hi is not None:
        deadline = time.monotonic() + DRAIN_S
        while True:
            received, last, closed = room.received(lo, hi)
            if last >= room.members or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        expected = room.members * (hi - lo + 1)
        loss = max(0.0, 1 - received / expected)
    hist = Hist.merged(p["hist"] for p in w["parts"])
    wall = w["wall_s"]
    return {
        "offered_gifts_per_s": rate, "acked_gifts_per_s": sender["acks"] / wall,
        "throttled": sender["throttled"], "errors": sender["errors"],
        "deliveries_per_s": delivered / wall, **hist.summary(),
        "unresolved_latencies": sum(p["unresolved"] for p in w["parts"]), "loss": loss,
        "server_cpu_pct": 100 * w["server_cpu_s"] / wall,
        "server_core_busy_pct": 100 * w["server_core_busy"] if w["server_core_busy"] is not None else None,
        "server_core_irq_pct": 100 * w["server_core_irq"] if w["server_core_irq"] is not None else None,
        "server_cpu_us_per_delivery": w["server_cpu_s"] / delivered * 1e6 if delivered else None,
        "valkey_cpu_pct": 100 * w["valkey_cpu_s"] / wall,
        "generator_cpu_pct": 100 * gen_cpu / wall,
        # The generator's cores as a whole (its workers, Valkey when it shares them, the kernel's
        # loopback work for what they send): at ~100% the generator, not the server, sets the pace.
        "generator_busy": _generator_busy(bench, w, gen_cpu),
        "close_codes": closed,
    }


def _generator_busy(bench: Bench, w: dict[str, Any], gen_cpu: float) -> float:
    if set(bench.placement.generator) & set(bench.placement.server) or w["generator_core_busy"] is None:
        return gen_cpu / w["wall_s"] / len(bench.placement.generator)  # unpinned: the workers alone
    return w["generator_core_busy"]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over the runs whose generator was not saturated (all runs, flagged,
    if every one was)."""
    valid = [r for r in runs if r["generator_busy"] < GEN_SATURATED]
    use = valid or runs
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    out: dict[str, Any] = {k: median(r.get(k) for r in use) for k in keys}
    out["loss"] = median(r["loss"] for r in use)
    out["runs_used"] = len(use)
    out["runs_discarded"] = len(runs) - len(valid)
    out["generator_saturated"] = not valid
    return out


def run(bench: Bench, *, targets: list[str], sizes: list[int], rates: list[float], runs: int,
        warmup_s: float, measure_s: float) -> list[dict[str, Any]]:
    """Every (size, target); results are recorded as they come, and a (size, target) that fails
    (e.g. a generator worker stops answering under overload) is recorded as failed."""
    cells: list[dict[str, Any]] = []
    for size in sizes:
        for name in targets:
            try:
                _target(bench, cells, name, size, rates, runs, warmup_s, measure_s)
            except (RuntimeError, TimeoutError, OSError) as exc:
                log(f"fanout: {name} {size}: FAILED: {exc}")
                cells.append({"target": name, "viewers": size, "rate": None, "skipped": f"failed: {exc}"[:200]})
            bench.record("fanout", cells)
    return cells


def _target(bench: Bench, cells: list[dict[str, Any]], name: str, size: int, rates: list[float], runs: int,
            warmup_s: float, measure_s: float) -> None:
    target = TARGETS[name]
    log(f"fanout: {name} with {size} viewers: connecting")
    with bench.room(target, size, SENDERS) as room:
        log(f"fanout: {name} {size}: {room.connect_stats['handshakes_per_s']:.0f} handshakes/s, "
            f"{room.connect_stats['rss_per_conn_kib']:.1f} KiB RSS per connection")
        skip_reason = None
        for rate in rates:
            cell: dict[str, Any] = {"target": name, "viewers": size, "members": room.members,
                                    "rate": rate, "connect": room.connect_stats}
            max_offered = MAX_OFFERED[bench.viewers]
            if not skip_reason and rate * room.members > max_offered:
                skip_reason = (f"{rate * room.members:,.0f} deliveries/s offered is beyond the load generator "
                               f"({bench.viewers} viewers: > {max_offered:,} /s)")
            if skip_reason:
                cell["skipped"] = skip_reason
                cells.append(cell)
                continue
            done = []
            for i in range(runs):
                done.append(_one_run(bench, room, rate, warmup_s, measure_s, f"f{size}.{rate:g}.{i}.{name}"))
                if room.server.stats.rss_bytes() > MAX_SERVER_RSS:
                    break  # the remaining runs would only grow it further
            cell["runs"] = done
            cell.update(summarize(done))
            cells.append(cell)
            log(f"fanout: {name} {size} @ {rate:g}/s: {cell['deliveries_per_s']:.0f} deliveries/s, "
                f"p50 {_ms(cell.get('p50_ms'))} p99 {_ms(cell.get('p99_ms'))}, loss {cell['loss']}, "
                f"server {cell['server_cpu_us_per_delivery'] or 0:.2f} µs/delivery "
                f"({cell['server_cpu_pct']:.0f}% cpu), generator {100 * cell['generator_busy']:.0f}%"
                + (" [generator saturated]" if cell["generator_saturated"] else ""))
            cell["server_rss_mib"] = room.server.stats.rss_bytes() / 2**20
            if cell["deliveries_per_s"] < 0.5 * rate * room.members:
                skip_reason = f"saturated at {rate:g} gifts/s (delivered < 50% of offered)"
            elif cell["server_rss_mib"] * 2**20 > MAX_SERVER_RSS:
                skip_reason = f"server RSS {cell['server_rss_mib']:.0f} MiB after {rate:g} gifts/s"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"
