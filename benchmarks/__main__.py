"""`python -m benchmarks SCENARIO [options]`: start Valkey and the servers, drive them with the
load generator, write results.json, results.md and PNG plots to --out.

    python -m benchmarks all --quick     # `make bench`: every scenario, short (a few minutes)
    python -m benchmarks all             # the full runs (see benchmarks/RESULTS.md)
    python -m benchmarks fanout --sizes 1000,5000,10000 --rates 10,100,1000 --runs 3

Scenarios: throughput (1, and 8 with --cluster), fanout (2, and 3: connections; 8 with
--cluster), rooms (4), crossproc (5), slow (6), storm (7), locust
(benchmarks/locustfile.py). Targets: see benchmarks/targets.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from benchmarks import report
from benchmarks.harness import Bench, log
from benchmarks.procs import ROOT

SCENARIOS = ("throughput", "fanout", "rooms", "crossproc", "slow", "storm", "locust")
ALL_TARGETS = "giftcast,giftcast-c0,floor,websockets,starlette,pysio,node"
QUICK = {"sizes": [1000], "rates": [10, 100], "runs": 1, "warmup": 1.0, "measure": 2.0, "locust_s": 15.0,
         "slow_wait_s": 15.0, "rooms": 100}
FULL = {"sizes": [1000, 5000, 10000], "rates": [10, 100, 1000], "runs": 3, "warmup": 2.0, "measure": 5.0,
        "locust_s": 60.0, "slow_wait_s": 120.0, "rooms": 1000}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", help=f"all, or a comma-separated list of: {', '.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="short runs: " + str(QUICK))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest")
    parser.add_argument("--targets", default=ALL_TARGETS)
    parser.add_argument("--sizes", type=_ints, help="viewers in the fan-out room (default 1000,5000,10000)")
    parser.add_argument("--rates", type=_floats, help="gifts/s offered in fan-out (default 10,100,1000)")
    parser.add_argument("--runs", type=int, help="runs per cell; the median is reported (default 3)")
    parser.add_argument("--warmup", type=float, help="seconds before each measurement window (default 2)")
    parser.add_argument("--measure", type=float, help="seconds per measurement window (default 5)")
    parser.add_argument("--locust-users", type=int, default=50, help="locust users (default 50)")
    parser.add_argument("--locust-s", type=float, help="locust run time, seconds (default 60)")
    parser.add_argument("--rooms", type=int, help="rooms in scenario 4 (default 1000)")
    parser.add_argument("--slow-wait-s", type=float, help="how long scenario 6 watches the stalled clients")
    parser.add_argument("--storm-jitter-s", type=float, default=2.0,
                        help="scenario 7: each viewer reconnects after a random delay up to this (default 2)")
    parser.add_argument("--fsync", choices=("always", "everysec", "no"), default="always",
                        help="Valkey appendfsync (default always: giftcast's production setting)")
    parser.add_argument("--before", metavar="REV",
                        help="git revision whose server/ the giftcast-before targets run (before/after in one run)")
    parser.add_argument("--cluster", type=int, default=0, metavar="N",
                        help="scenario 8: run on a Redis Cluster of N Valkey primaries instead of one Valkey "
                             "(giftcast, the floor and the Node peer; python-socketio's Redis manager has no "
                             "cluster support; no raw Lua capacity: the gift spans two slots there)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--viewers", choices=("c", "py"), default="c",
                        help="the load generator's viewer workers: c (benchmarks/cgen, default) or py "
                             "(the storm's viewers are always py)")
    args = parser.parse_args(argv)
    args.scenarios = SCENARIOS if args.scenario == "all" else tuple(args.scenario.split(","))
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse(argv)
    targets = [t for t in args.targets.split(",") if t]
    if args.cluster and "pysio" in targets:
        log("pysio skipped: python-socketio's AsyncRedisManager cannot use a Redis Cluster")
        targets.remove("pysio")
    scenarios = args.scenarios
    timing = {"runs": args.runs, "warmup_s": args.warmup, "measure_s": args.measure}
    bench = Bench(args.out, pin=not args.no_pin, fsync=args.fsync, before=args.before, cluster=args.cluster,
                  viewers=args.viewers)
    try:
        if "throughput" in scenarios:
            from benchmarks.scenarios import throughput

            bench.fund(40_000 * args.runs)
            bench.record("throughput", throughput.run(
                bench, targets=[t for t in targets if t in ("giftcast-before", "giftcast", "giftcast-c0", "pysio", "node")], **timing))
        if "fanout" in scenarios:
            from benchmarks.scenarios import fanout

            gifts = sum(args.rates) * (args.warmup + args.measure + 1) * args.runs * len(args.sizes)
            bench.fund(int(gifts * len(targets) / fanout.SENDERS) + 1000)
            bench.record("fanout", fanout.run(bench, targets=targets, sizes=args.sizes, rates=args.rates, **timing))
        if "rooms" in scenarios:
            from benchmarks.scenarios import rooms

            bench.fund(20_000)
            bench.record("rooms", rooms.run(bench, targets=[t for t in targets if t in ("giftcast", "pysio", "node")],
                                            rooms=args.rooms, seconds=args.measure))
        if "crossproc" in scenarios:
            from benchmarks.scenarios import crossproc

            bench.fund(20_000)
            bench.record("crossproc", crossproc.run(
                bench, targets=[t for t in targets if t in ("giftcast", "pysio", "node")],
                viewers=min(args.sizes), **timing))
        if "slow" in scenarios:
            from benchmarks.scenarios import slow

            bench.fund(20_000)
            bench.record("slow", slow.run(bench, targets=[t for t in targets if t in ("giftcast", "pysio", "node")],
                                          viewers=min(100, *args.sizes), rate=400, max_wait_s=args.slow_wait_s))
        if "storm" in scenarios:
            from benchmarks.scenarios import storm

            bench.fund(20_000)
            bench.record("storm", storm.run(
                bench, targets=[t for t in targets if t in ("giftcast", "pysio", "node")],
                sizes=args.sizes if not args.quick else args.sizes[:1], jitter_s=args.storm_jitter_s,
                warmup_s=args.warmup))
        if "locust" in scenarios:
            from benchmarks.scenarios import locust_run

            bench.record("locust", locust_run.run(bench, users=args.locust_users, seconds=args.locust_s))
        bench.results["audit"] = _audit(bench)
    finally:
        bench.close()
    bench.save()
    md = report.write(args.out)
    log(f"results: {args.out / 'results.json'}, {md}")
    print(md.read_text())
    return 0


def _audit(bench: Bench) -> str:
    """`python -m server audit` against the run's Valkey: every ledger against the balances."""
    env = {**os.environ, "REDIS_URL": bench.valkey.url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "server", "audit"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    log(f"audit exit {done.returncode}: {done.stdout.strip().splitlines()[-1] if done.stdout else done.stderr}")
    return f"$ python -m server audit   (exit {done.returncode})\n{done.stdout}{done.stderr}"


if __name__ == "__main__":
    sys.exit(main())
