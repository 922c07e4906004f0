"""`python -m benchmarks SCENARIO [options]`: run scenarios, write results JSON + markdown.

    python -m benchmarks fanout --sizes 1000,5000 --rates 10,100,1000 --runs 3
    python -m benchmarks all --quick        # what `make bench` runs

Results go to --out (default benchmarks/results/latest/): results.json, results.md, plots.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.harness import Bench, log
from benchmarks.procs import ROOT

SCENARIOS = ("throughput", "fanout")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=(*SCENARIOS, "all"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest")
    parser.add_argument("--targets", default="giftcast,giftcast-c10,floor,websockets,starlette,pysio,node")
    parser.add_argument("--sizes", type=_ints, default=[1000, 5000])
    parser.add_argument("--rates", type=_floats, default=[10, 100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--measure", type=float, default=5.0)
    parser.add_argument("--fsync", choices=("always", "everysec", "no"), default="always")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    bench = Bench(args.out, pin=not args.no_pin, fsync=args.fsync)
    try:
        scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
        if "throughput" in scenarios:
            from benchmarks.scenarios import throughput

            tp_targets = [t for t in targets if t in ("giftcast", "pysio", "node")]
            bench.fund(200_000)
            bench.record("throughput", throughput.run(bench, targets=tp_targets, runs=args.runs,
                                                      warmup_s=args.warmup, measure_s=args.measure))
        if "fanout" in scenarios:
            from benchmarks.scenarios import fanout

            gifts = sum(args.rates) * (args.warmup + args.measure + 1) * args.runs * len(args.sizes)
            bench.fund(int(gifts * len(targets) / fanout.SENDERS) + 1000)
            bench.record("fanout", fanout.run(bench, targets=targets, sizes=args.sizes, rates=args.rates,
                                              runs=args.runs, warmup_s=args.warmup, measure_s=args.measure))
    finally:
        bench.close()
    log(f"results: {bench.save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
