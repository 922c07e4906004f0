"""The servers a scenario can drive, by name, and how to start each.

| name | what | dialect |
|---|---|---|
| giftcast | `python -m server serve` as shipped: GIFTCAST_COALESCE_MS=20 (flush on the next tick after a quiet spell, at most every 20 ms under load) | giftcast msgpack |
| giftcast-c0, -c10 | the same flushing on every loop tick (0) / at most every 10 ms | giftcast msgpack |
| giftcast-json | the same, clients on the JSON subprotocol | giftcast json |
| giftcast-before, -before-c10, -before-c20 | giftcast as of `--before REV` (the server/ tree of that commit), for before/after in one run | giftcast msgpack |
| floor | baselines/floor.py: one pre-encoded frame per transport, coalesced per tick | giftcast msgpack |
| websockets | baselines/websockets_broadcast.py: `websockets.broadcast()` | giftcast msgpack |
| starlette | baselines/starlette_app.py: Starlette + uvicorn, `await ws.send_bytes` per member | giftcast msgpack |
| pysio | peers/pysio: python-socketio + AsyncRedisManager under uvicorn | socket.io |
| node | peers/node: Node socket.io + @socket.io/redis-adapter | socket.io |

giftcast and the two peers debit `server/lua/send_gift.lua` on the harness's Valkey; the floor
and the baselines have no Redis and no money: they measure fan-out alone.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.procs import ROOT, ServerProc, free_port
from server.catalog import MAX_COINS

__all__ = ["TARGETS", "Context", "Target", "ensure_node_peer"]

NODE_DIR = ROOT / "benchmarks" / "peers" / "node"


@dataclasses.dataclass
class Context:
    """What starting a server needs: Redis, secrets, cores, where logs go, the gift prices."""

    redis_url: str
    token_secret: str
    webhook_secret: str
    cpus: tuple[int, ...]
    log_dir: Path
    gift_prices: dict[str, int]
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)
    before_dir: Path | None = None  # a tree holding server/ as of `--before REV` (giftcast-before)


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "giftcast", "reference" (floor/baselines) or "peer"
    dialect: str
    uses_redis: bool
    env: tuple[tuple[str, str], ...] = ()
    before: bool = False  # run the server/ of ctx.before_dir instead of this checkout's

    def argv(self) -> list[str]:
        py = sys.executable
        if self.kind == "giftcast":
            return [py, "-m", "server", "serve"]
        return {
            "floor": [py, "-m", "benchmarks.baselines.floor"],
            "websockets": [py, "-m", "benchmarks.baselines.websockets_broadcast"],
            "starlette": [py, "-m", "benchmarks.baselines.starlette_app"],
            "pysio": [py, "-m", "benchmarks.peers.pysio.server"],
            "node": ["node", str(NODE_DIR / "server.js")],
        }[self.name]

    def start(self, ctx: Context, port: int | None = None, tag: str = "") -> ServerProc:
        port = port or free_port()
        env = {
            "PORT": str(port), "HOST": "127.0.0.1", "REDIS_URL": ctx.redis_url,
            "GIFTCAST_TOKEN_SECRET": ctx.token_secret, "GIFTCAST_WEBHOOK_SECRET": ctx.webhook_secret,
            "GIFTCAST_TOKEN_TTL_S": str(7 * 86400), "GIFTCAST_DEV_TOKENS": "1",
            "GIFTCAST_SANDBOX_PAYMENTS": "1", "GIFTCAST_LOG_LEVEL": "warning",
            # A throughput run's senders would pass the platform's daily spending cap; caps are
            # one more counter in the same script, not what is measured.
            "GIFTCAST_SPEND_CAP_DAY_COINS": str(MAX_COINS), "GIFTCAST_SPEND_CAP_WEEK_COINS": str(MAX_COINS),
            # Capacity, not policy: the per-user gift rate and the frame rates are off.
            "GIFTCAST_GIFT_RATE_PER_S": "0", "GIFTCAST_FRAME_RATE_PER_S": "0", "GIFTCAST_USER_FRAME_RATE_PER_S": "0",
            # `--fsync everysec|no` runs Valkey unsafely on purpose (giftcast would refuse to start).
            "GIFTCAST_REDIS_ALLOW_UNSAFE": "1",
            "BENCH_GIFT_PRICES": json.dumps(ctx.gift_prices), **dict(self.env), **ctx.extra_env,
        }
        argv = self.argv()
        if self.kind != "giftcast":
            argv = [*argv, "--port", str(port)]
        if self.name == "node":
            ensure_node_peer()
        cwd = ROOT
        if self.before:
            if ctx.before_dir is None:
                raise RuntimeError(f"{self.name} needs --before REV")
            cwd = ctx.before_dir
            env["PYTHONPATH"] = str(cwd)  # `python -m server` finds that tree's server/ first
        return ServerProc(self.name + tag, argv, port=port, env=env, cpus=ctx.cpus, log_dir=ctx.log_dir, cwd=cwd)


def _giftcast(name: str, coalesce_ms: int, dialect: str = "giftcast-msgpack", *, before: bool = False) -> Target:
    return Target(name, "giftcast", dialect, True, (("GIFTCAST_COALESCE_MS", str(coalesce_ms)),), before)


TARGETS: dict[str, Target] = {t.name: t for t in (
    _giftcast("giftcast", 20),
    _giftcast("giftcast-c0", 0),
    _giftcast("giftcast-c10", 10),
    _giftcast("giftcast-json", 20, "giftcast-json"),
    _giftcast("giftcast-before", 0, before=True),
    _giftcast("giftcast-before-c10", 10, before=True),
    _giftcast("giftcast-before-c20", 20, before=True),
    Target("floor", "reference", "giftcast-msgpack", False),
    Target("websockets", "reference", "giftcast-msgpack", False),
    Target("starlette", "reference", "giftcast-msgpack", False),
    Target("pysio", "peer", "socketio", True),
    Target("node", "peer", "socketio", True),
)}


def ensure_node_peer() -> None:
    """`npm ci` the Node peer once (node_modules is not committed)."""
    if (NODE_DIR / "node_modules" / "socket.io").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the node peer needs Node 20+ and npm on PATH")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)


def describe(name: str) -> dict[str, Any]:
    target = TARGETS[name]
    return {"name": target.name, "kind": target.kind, "dialect": target.dialect, "env": dict(target.env),
            "before": target.before}


def export_before(rev: str, into: Path) -> Path:
    """Check out the server/ (and client_demo/, which it serves) of git revision `rev` into `into`."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev, "server", "client_demo"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
