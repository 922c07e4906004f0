"""The benchmark harness at a toy size, so it cannot rot: scenarios run end to end against real
servers (giftcast and the floor) and a real Valkey, and their results are consistent.

The fan-out run (~10 s) is in `make test`; every scenario together and the locust run take
longer and are marked slow (`make test-slow`). No timing is asserted: performance is read from
benchmarks/RESULTS.md, never from tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = ["--quick", "--sizes", "20", "--rates", "20", "--runs", "1", "--warmup", "0.3", "--measure", "0.7",
       "--targets", "giftcast,floor"]


def _bench(out: Path, scenarios: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks", scenarios, *TOY, *extra, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_fanout_benchmark_delivers_every_event_to_every_member(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = _bench(out, "fanout")
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    cells = {c["target"]: c for c in results["scenarios"]["fanout"]}
    assert set(cells) == {"giftcast", "floor"}
    for cell in cells.values():
        assert cell["members"] == 28  # 20 viewers + 8 senders
        assert cell["loss"] == 0 and cell["deliveries_per_s"] > 0 and cell["p99_ms"] is not None
        assert cell["connect"]["handshakes_per_s"] > 0
    assert "audit: OK" in results["audit"]
    assert "÷ floor" in (out / "results.md").read_text()


@pytest.mark.slow
def test_quick_benchmark_runs_every_scenario_and_reconciles(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = _bench(out, "throughput,fanout,crossproc,slow,storm", "--slow-wait-s", "1", "--storm-jitter-s", "0.5")
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

    slow = {c["kind"]: c for c in scenarios["slow"]["cells"]}
    assert set(slow) == {"stalled", "10x-slower"}
    for cell in slow.values():
        assert cell["slow"] == 1 and cell["fast_p99_ms"] is not None and cell["gifts"] > 0
    slower = slow["10x-slower"]
    assert 0 < slower["slow_read_bytes_per_s"] < slower["slow_full_bytes_per_s"] / 5
    assert slower["slow_received"] == slower["slow_expected"]  # never cut at this size: it drains everything

    [storm] = scenarios["storm"]["cells"]
    assert storm["back"] == storm["viewers"] == 20 and storm["exactly_once"] and storm["gifts"] > 0

    assert "audit: OK" in results["audit"]
    assert "Scenario 2: fan-out" in (out / "results.md").read_text()


@pytest.mark.slow
def test_storm_with_a_peer_reports_its_viewers_loss_and_completes(tmp_path: Path) -> None:
    pytest.importorskip("socketio", reason="python-socketio is in the bench extras")
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "storm", *TOY[:-2], "--targets", "pysio",
                           "--storm-jitter-s", "0.5", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    [storm] = json.loads((out / "results.json").read_text())["scenarios"]["storm"]["cells"]
    assert storm["target"] == "pysio" and storm["back"] == storm["viewers"] == 20
    assert storm["resumed"] == 0 and storm["reset"] == 20  # a Socket.IO rejoin has no resume
    assert 0 < storm["deliveries"] < storm["expected"] and not storm["exactly_once"]


@pytest.mark.slow
def test_locust_scenario_puts_its_numbers_in_the_results(tmp_path: Path) -> None:
    pytest.importorskip("locust", reason="locust is in the bench extras")
    out = tmp_path / "bench"
    done = _bench(out, "locust", "--locust-users", "2", "--locust-s", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    locust = json.loads((out / "results.json").read_text())["scenarios"]["locust"]
    rows = {row[1]: row for row in locust["table"][1:]}
    assert rows["ws connect+join"][2] >= 1 and rows["Aggregated"][3] == 0  # requests, no failures


@pytest.mark.slow
def test_cluster_benchmark_runs_giftcast_on_a_valkey_cluster_and_reconciles(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "throughput,fanout", *TOY[:-2], "--targets", "giftcast",
                           "--cluster", "3", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["cluster_primaries"] == 3
    [giftcast] = results["scenarios"]["throughput"]["targets"]
    assert giftcast["reconciled"] and giftcast["acks_total"] > 0 and not giftcast["errors_total"]
    [cell] = results["scenarios"]["fanout"]
    assert cell["loss"] == 0 and cell["deliveries_per_s"] > 0
    assert "audit: OK" in results["audit"]
