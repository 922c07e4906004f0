"""The benchmark harness at a toy size, so it cannot rot: every scenario runs end to end against
real servers (giftcast and the floor) and a real Valkey, and its results are consistent.

No timing is asserted: performance is read from benchmarks/RESULTS.md, never from tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmark_runs_every_scenario_and_reconciles(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "all", "--quick", "--sizes", "20", "--rates", "20", "--runs", "1",
         "--warmup", "0.3", "--measure", "0.7", "--targets", "giftcast,floor", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    scenarios = results["scenarios"]

    throughput = scenarios["throughput"]
    assert throughput["raw"]["reconciled"] and throughput["raw"]["gifts_per_s"] > 0
    [giftcast] = throughput["targets"]
    assert giftcast["reconciled"] and giftcast["acks_total"] == giftcast["diamonds_credited"] > 0

    cells = {c["target"]: c for c in scenarios["fanout"]}
    assert set(cells) == {"giftcast", "floor"}
    for cell in cells.values():
        assert cell["members"] == 28  # 20 viewers + 8 senders
        assert cell["loss"] == 0 and cell["deliveries_per_s"] > 0 and cell["p99_ms"] is not None

    [cross] = scenarios["crossproc"]["cells"]
    assert cross["target"] == "giftcast" and cross["b_p50_ms"] is not None

    assert "audit: OK" in results["audit"]
    assert "Scenario 2: fan-out" in (out / "results.md").read_text()
