"""The C viewer worker (benchmarks/cgen/viewers.c through benchmarks/cviewers.py) against a real
giftcast server, Valkey and Python sender started by the benchmark harness at toy size: it
counts what a Python viewer counts, exactly once per connection, and measures latency.

The socket.io dialect needs the Node peer's packages (`npm ci`) or the bench extras: it is
exercised by the benchmark runs, not here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cviewers import CViewerHandle, ensure_built, start_cviewers
from benchmarks.harness import Bench
from benchmarks.loadgen import start_worker
from benchmarks.stats import Hist
from benchmarks.targets import TARGETS

C_VIEWERS, PY_VIEWERS, SENDERS = 6, 3, 2
ALL_SEQS = (0, 100_000)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    bench = Bench(tmp_path_factory.mktemp("bench"), pin=False, viewer_users=10, senders=SENDERS)
    try:
        bench.fund(2_000)
        yield bench
    finally:
        bench.close()


def _gifting(bench: Bench, target: str) -> dict[str, Any]:
    """C and Python viewers in one room while the senders gift; returns each worker's window and
    its deliveries of the window's seqs once the room has drained."""
    with bench.room(TARGETS[target], C_VIEWERS, SENDERS) as room:
        assert room.sender is not None
        [c_worker] = room.viewers
        py_worker = start_worker(room._spec(room.server.port))
        room.viewers.append(py_worker)
        assert py_worker.call("connect", n=PY_VIEWERS, tokens=bench.pop.viewer_tokens)["ok"] == PY_VIEWERS
        room.broadcast("mark")
        room.sender.call("start", rate=200, key_prefix=f"cv.{target}.{time.time_ns()}")
        assert c_worker.call("await", lo=ALL_SEQS[0], hi=ALL_SEQS[1], n=30 * C_VIEWERS)["met"]
        room.sender.call("stop")
        sender, c_window, py_window = room.broadcast("collect")
        lo, hi = sender["seq_lo"], sender["seq_hi"]
        # Drained: the window's last gift has reached every connection of every worker.
        members = ((room.sender, SENDERS), (c_worker, C_VIEWERS), (py_worker, PY_VIEWERS))
        for worker, conns in members:
            worker.send("await", lo=hi, hi=hi, n=conns)
        assert all(worker.reply()["met"] for worker, _ in members)
        return {"gifts": hi - lo + 1, "c_window": c_window, "py_window": py_window,
                "c": c_worker.call("received", lo=lo, hi=hi), "py": py_worker.call("received", lo=lo, hi=hi)}


@pytest.fixture(scope="module")
def giftcast_run(bench: Bench) -> dict[str, Any]:
    return _gifting(bench, "giftcast")


def test_c_viewers_receive_every_gift_exactly_once(giftcast_run: dict[str, Any]) -> None:
    c = giftcast_run["c"]
    assert giftcast_run["gifts"] >= 30
    assert c["min_per_seq"] == c["max_per_seq"] == C_VIEWERS
    assert c["received"] == C_VIEWERS * giftcast_run["gifts"] and c["conns"] == C_VIEWERS


def test_c_viewers_count_what_a_python_viewer_counts(giftcast_run: dict[str, Any]) -> None:
    c, py = giftcast_run["c"], giftcast_run["py"]
    assert c["received"] // C_VIEWERS == py["received"] // PY_VIEWERS == giftcast_run["gifts"]
    assert c["last"] == C_VIEWERS and py["last"] == PY_VIEWERS


def test_c_viewers_measure_the_latency_of_every_gift_in_the_window(giftcast_run: dict[str, Any]) -> None:
    window = giftcast_run["c_window"]
    hist = Hist.merged([window["hist"]])
    assert window["delivered"] > 0 and window["unresolved"] == 0
    assert hist.n == window["delivered"] and 0 < hist.max_us < 2_000_000
    assert hist.percentile(99) is not None and window["cpu_s"] >= 0 and window["wall_s"] > 0


def test_c_viewers_speak_the_json_subprotocol(bench: Bench) -> None:
    run = _gifting(bench, "giftcast-json")
    assert run["c"]["min_per_seq"] == run["c"]["max_per_seq"] == C_VIEWERS
    assert run["c"]["received"] // C_VIEWERS == run["py"]["received"] // PY_VIEWERS == run["gifts"]


def test_c_viewers_report_a_refused_handshake_as_failed_connections(bench: Bench) -> None:
    with bench.room(TARGETS["giftcast"], 0, 0) as room:
        worker = start_cviewers(room._spec(room.server.port))
        try:
            reply = worker.call("connect", n=3, tokens=["not-a-token"])
        finally:
            worker.stop()
    assert reply["ok"] == 0 and reply["failed"] == 3
    [(reason, count)] = reply["errors"].items()
    assert reason.startswith("handshake refused: HTTP/1.1 4") and count == 3


def test_c_viewer_worker_answers_an_unknown_command_with_an_error(bench: Bench) -> None:
    with bench.room(TARGETS["giftcast"], 0, 0) as room:
        worker: CViewerHandle = start_cviewers(room._spec(room.server.port))
        try:
            with pytest.raises(RuntimeError, match="unknown command"):
                worker.call("start")
        finally:
            worker.stop()


def test_an_await_for_events_that_never_come_answers_not_met_at_its_timeout(bench: Bench) -> None:
    with bench.room(TARGETS["giftcast"], 0, 0) as room:
        worker: CViewerHandle = start_cviewers(room._spec(room.server.port))
        try:
            assert worker.call("await", lo=5, hi=5, n=1, within_s=0.1) == {"met": False, "received": 0}
        finally:
            worker.stop()


def test_building_without_a_compiler_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(RuntimeError, match="no C compiler"):
        ensure_built(tmp_path / "build")
