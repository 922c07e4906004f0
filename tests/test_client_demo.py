"""client_demo end to end: the real CLI (a subprocess) against a real server, plus its dedupe rule."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from client_demo import cli
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


async def run_cli(server, *args: str) -> tuple[int, list[Any], str]:
    """Run `python -m client_demo`; returns (exit status, stdout JSON lines, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client_demo", "--url", server.http_url, *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    return proc.returncode, [_line(line) for line in out.decode().splitlines()], err.decode()


def _line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return line


async def test_token_buy_and_wallet(live_server):
    status, out, _ = await run_cli(live_server, "--dev-user", "bob", "token")
    assert status == 0 and out[0].startswith("gc1.")

    status, out, err = await run_cli(live_server, "--dev-user", "bob", "buy", "coins_700", "--method", "paypal")
    assert status == 0, err
    assert out[0]["status"] == "paid" and out[0]["credited"] == 707 and out[0]["coins"] == 707

    status, out, _ = await run_cli(live_server, "--token", live_server.token("bob"), "wallet")
    assert (status, out) == (0, [{"user_id": "bob", "coins": 707, "diamonds": 0, "diamonds_held": 0, "locked": None}])


async def test_watch_sees_every_gift_the_gift_command_sends(live_server):
    status, out, _ = await run_cli(live_server, "--dev-user", "alice", "--role", "creator", "open")
    assert status == 0 and out[0]["status"] == "open"
    assert (await run_cli(live_server, "--dev-user", "bob", "buy", "coins_70"))[0] == 0

    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client_demo", "--url", live_server.http_url, "--dev-user", "carol",
        "watch", "alice", "--max-events", "3", cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert watcher.stdout is not None
    async with asyncio.timeout(15):
        joined = json.loads(await watcher.stdout.readline())
    assert joined["t"] == "joined" and joined["snapshot"]["status"] == "open"

    status, out, err = await run_cli(
        live_server, "--dev-user", "bob", "gift", "alice", "rose", "--count", "2", "--times", "3", "--rate", "50")
    assert status == 0, err
    acks, summary = out[:-1], out[-1]["summary"]
    assert [a["t"] for a in acks] == ["ack"] * 3
    assert summary == {"sent": 3, "acked": 3, "replays": 0, "errors": {}, "coins_spent": 6, "balance": 64}

    async with asyncio.timeout(15):
        rest, _ = await watcher.communicate()
    events = [json.loads(line) for line in rest.decode().splitlines()]
    assert watcher.returncode == 0
    assert [(e["t"], e["from"], e["count"]) for e in events] == [("gift", "bob", 2)] * 3
    assert [e["seq"] for e in events] == sorted(a["receipt"]["seq"] for a in acks)


async def test_gift_errors_are_printed_and_fail_the_run(live_server):
    await run_cli(live_server, "--dev-user", "alice", "--role", "creator", "open")
    status, out, _ = await run_cli(live_server, "--dev-user", "dave", "gift", "alice", "rose", "--times", "2", "--rate", "0")
    assert status == 1
    assert [f["code"] for f in out[:-1]] == ["insufficient_funds"] * 2
    assert out[-1]["summary"]["errors"] == {"insufficient_funds": 2}


async def test_http_errors_go_to_stderr(live_server):
    status, out, err = await run_cli(live_server, "--dev-user", "bob", "open")
    assert (status, out) == (1, [])
    assert json.loads(err)["error"]["code"] == "forbidden"


@dataclasses.dataclass
class ServeProcess:
    http_url: str


async def test_against_python_m_server_serve_on_uvloop(redis, valkey_url):
    """The production entry point (uvloop, httptools), as `make run` starts it."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": valkey_url, "PORT": str(port), "GIFTCAST_DEV_TOKENS": "1", "GIFTCAST_SANDBOX_PAYMENTS": "1",
           "GIFTCAST_LOG_LEVEL": "warning"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            assert "giftcast listening" in (await proc.stdout.readline()).decode()
        server = ServeProcess(f"http://127.0.0.1:{port}")
        assert (await run_cli(server, "--dev-user", "alice", "--role", "creator", "open"))[0] == 0
        assert (await run_cli(server, "--dev-user", "bob", "buy", "coins_70"))[0] == 0
        status, out, err = await run_cli(server, "--dev-user", "bob", "gift", "alice", "panda", "--times", "2")
        assert status == 0, err
        assert out[-1]["summary"]["balance"] == 60
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await proc.wait()


class FakeWs:
    close_code, close_reason = 1000, ""


class FakeClient:
    """Events queued before the joined reply, as the server may send them."""

    def __init__(self, events: list[dict[str, Any] | None], snapshot_seq: int) -> None:
        self.ws = FakeWs()
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        for event in events:
            self.events.put_nowait(event)
        self.snapshot = {"seq": snapshot_seq, "epoch": "e1"}

    async def join(self, room: str) -> dict[str, Any]:
        return {"t": "joined", "id": 1, "room": room, "snapshot": self.snapshot}


def gift_event(seq: int) -> dict[str, Any]:
    return {"t": "gift", "room": "alice", "seq": seq, "epoch": "e1"}


@pytest.mark.parametrize("queued,printed", [
    ([gift_event(4), gift_event(5), gift_event(6), None], [6]),  # 4, 5 are in the snapshot
    ([gift_event(6), gift_event(6), gift_event(7), None], [6, 7]),  # duplicates dropped
])
async def test_watch_prints_only_events_after_the_snapshot(capsys, queued, printed):
    assert await cli.watch(FakeClient(queued, snapshot_seq=5), "alice", None) == 0  # type: ignore[arg-type]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["t"] == "joined" and [e["seq"] for e in lines[1:]] == printed


async def test_creator_sets_a_goal_and_gets_the_overlay_url(live_server):
    creator = ("--dev-user", "alice", "--role", "creator")
    assert (await run_cli(live_server, *creator, "open"))[0] == 0
    status, out, err = await run_cli(live_server, *creator, "goal", "5000")
    assert status == 0, err
    assert out[0]["goal"] == 5000
    status, out, err = await run_cli(live_server, *creator, "overlay")
    assert status == 0, err
    assert out[0]["overlay_url"] == f"{live_server.http_url}/overlay/alice?token={out[0]['token']}"


async def test_events_prints_the_room_events_after_a_position(live_server):
    await run_cli(live_server, "--dev-user", "alice", "--role", "creator", "open")
    await run_cli(live_server, "--dev-user", "alice", "--role", "creator", "goal", "1")
    await run_cli(live_server, "--dev-user", "bob", "buy", "coins_70")
    await run_cli(live_server, "--dev-user", "bob", "gift", "alice", "rose")
    status, out, err = await run_cli(live_server, "--dev-user", "alice", "--role", "overlay", "events",
                                     "--since", "1", "--max-events", "3")
    assert status == 0, err
    assert [(f["t"], f.get("seq")) for f in out] == [("ready", None), ("goal", 2), ("gift", 3), ("goal_reached", 3)]
