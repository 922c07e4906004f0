"""giftcast command line: `python -m server [serve]` (also the `giftcast` script).

Settings come from the environment only (`Settings.from_env()`); there are no --host/--port flags.

    serve   (default) run the HTTP + WebSocket server under uvicorn on uvloop
    audit   replay every ledger against the balances; exit 1 if anything disagrees
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from collections.abc import Callable, Sequence

import uvicorn
import uvloop

from server import logs
from server.errors import ConfigError
from server.redis_runtime import redact_url
from server.settings import Settings

__all__ = ["main", "serve"]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: sys.argv[1:]) and run the subcommand; returns the exit status."""
    parser = argparse.ArgumentParser(prog="giftcast", description="Real-time live-stream gifting server.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="run the server (default); configured by environment variables")
    commands.add_parser("audit", help="check every balance against its ledger and conservation")
    args = parser.parse_args(argv)
    handlers: dict[str, Callable[[], int]] = {"serve": serve, "audit": audit}
    try:
        return handlers[args.command or "serve"]()
    except ConfigError as exc:
        print(f"giftcast: configuration error: {exc.message}", file=sys.stderr)
        return 2


def serve() -> int:
    """Run giftcast until SIGINT/SIGTERM (uvicorn then drains for up to 30 s)."""
    settings = Settings.from_env()
    logs.configure(settings)

    # Imported here: these modules are optional at import time of the CLI.
    from server.app import create_app
    from server.ws_transport import WebSocketTransport

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="none",  # the loop is uvloop, made by the Runner below
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ws=WebSocketTransport,
        ws_max_size=settings.max_frame_bytes,
        lifespan="on",
        log_config=None,  # our root handler (server/logs.py) formats uvicorn's records too
        access_log=False,  # server/observe_http.py logs each request, without its query string
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
    )
    server = _Server(config, settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(server.serve())
    return 0


def audit() -> int:
    """Replay the ledgers of the configured Redis (or the embedded Valkey, if no server holds it)."""
    from server.audit import audit as run_audit
    from server.redis_runtime import RedisRuntime

    settings = Settings.from_env()

    async def check() -> int:
        async with RedisRuntime(settings) as runtime:
            report = await run_audit(runtime.client)
        print(f"audited {report.users} users, {report.entries} ledger entries: coins credited "
              f"{report.coins_credited} = held {report.coins_held} + spent {report.coins_spent}; "
              f"diamonds credited {report.diamonds_credited}, held {report.diamonds_held}; "
              f"gifts in flight {report.gifts_in_flight}")
        for problem in report.problems:
            print(f"MISMATCH {problem}")
        print("audit: OK" if report.ok else f"audit: {len(report.problems)} problem(s)")
        return 0 if report.ok else 1

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(check())


class _Server(uvicorn.Server):
    """uvicorn.Server that prints one "listening" line once the socket is bound and startup done."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self._settings = settings

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await super().startup(sockets)
        if not self.started:
            return
        s = self._settings
        port = self.servers[0].sockets[0].getsockname()[1] if self.servers else s.port
        host = f"[{s.host}]" if ":" in s.host else s.host
        if s.redis_url is None:
            mode = f"embedded valkey in {(s.data_dir / 'valkey').resolve()}"
        else:
            mode = redact_url(s.redis_url)
        print(f"giftcast listening on http://{host}:{port} (redis: {mode})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
