"""Locust (benchmarks/locustfile.py) against a fresh giftcast, headless, numbers into the results.

The same command a person runs by hand (see the locustfile's docstring), on the generator's
cores, with the server's own CPU measured around it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.harness import Bench, log
from benchmarks.procs import ROOT
from benchmarks.targets import TARGETS

__all__ = ["run"]

LOCUSTFILE = ROOT / "benchmarks" / "locustfile.py"


def command(host: str, users: int, seconds: float, csv_prefix: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
            "-r", str(max(1, users // 2)), "-t", f"{int(seconds)}s", "--host", host, "--csv", csv_prefix,
            "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING"]


def run(bench: Bench, *, users: int, seconds: float) -> dict[str, Any]:
    out_dir = bench.out_dir / "locust"
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = str(out_dir / "locust")
    server = TARGETS["giftcast"].start(bench.ctx, tag="-locust")
    try:
        host = f"http://127.0.0.1:{server.port}"
        argv = command(host, users, seconds, prefix)
        cpus = bench.placement.generator
        cpu0, t0 = server.stats.cpu_s(), time.monotonic()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120,
                              env={**os.environ, "PYTHONPATH": str(ROOT)},
                              preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        cpu = server.stats.cpu_s() - cpu0
        wall = time.monotonic() - t0
    finally:
        server.stop()
    rows = []
    with open(prefix + "_stats.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows.append([r["Type"], r["Name"], int(r["Request Count"]), int(r["Failure Count"]),
                         float(r["50%"] or 0), float(r["95%"] or 0), float(r["99%"] or 0),
                         float(r["Requests/s"] or 0)])
    log(f"locust: exit {done.returncode}, {len(rows)} stat rows, server {100 * cpu / wall:.0f}% cpu")
    head = ["type", "name", "requests", "failures", "p50 ms", "p95 ms", "p99 ms", "req/s"]
    display = " ".join(a if not a.startswith("http://") else "http://127.0.0.1:PORT" for a in argv[1:])
    return {"title": f"Locust: {users} users for {seconds:g} s (4 WebSocket viewers : 1 HTTP buyer)",
            "table": [head, *rows], "exit_code": done.returncode, "server_cpu_pct": 100 * cpu / wall,
            "notes": [f"Command: `locust {display.split(' ', 2)[2]}`; server CPU {100 * cpu / wall:.0f}% "
                      f"of a core over the run; locust exit code {done.returncode}.",
                      *([f"locust stderr: `{done.stderr.strip()[-500:]}`"] if done.returncode else [])]}
