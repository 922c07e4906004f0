"""The application: builds every service at start-up and tears it down at shutdown.

`create_app(settings)` returns the Starlette app for HTTP. WebSocket upgrades on the same port
never reach Starlette: uvicorn hands them to `ws_transport.WebSocketTransport`, which finds
the shared `Services` in the lifespan state under ``"giftcast"`` (see docs/fanout.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from server.admin_api import routes as admin_routes
from server.bank import Bank, spend_caps
from server.admission import AddressLimit
from server.broker import RedisBroker
from server.catalog import load_catalog
from server.cluster_broker import ClusterBroker
from server.gift_recovery import GiftRecovery
from server.gifting import GiftService
from server.durable import ReplicaWait
from server.economy_api import routes as economy_routes
from server.history import RoomHistory
from server.http_api import exception_handlers, routes
from server.hooks import HookDispatcher, HookStore
from server.hooks_api import routes as hook_routes
from server.hub import RoomHub
from server.live_store import LiveStore
from server.metrics import Metrics
from server.observe_http import ObservedHTTP
from server.openapi import routes as openapi_routes
from server.order_store import OrderStore
from server.pages import routes as page_routes
from server.payouts_api import routes as payout_routes
from server.payments import WEBHOOK_PATH, SandboxProvider
from server.ratelimit import UserBuckets
from server.redis_runtime import RedisRuntime
from server.script_pipe import ScriptPipe
from server.scripts import Scripts, TimedScript, script_source
from server.services import Services
from server.settings import Settings
from server.split_gift import SplitGiftStore, crash_after_debit
from server.streaks import StreakSweeper
from server.viewers import ViewerCounter
from server.wallet_store import GiftPolicy, WalletStore

__all__ = ["create_app", "webhook_url", "ROUTES", "ALL_ROUTES"]

log = logging.getLogger("giftcast")
# Every API route: http_api's, then the economy's (catalogs, accounts, goods), withdrawals, admin,
# integrator webhooks. ALL_ROUTES adds the OpenAPI document describing them and the HTML pages.
ROUTES = routes + economy_routes + payout_routes + admin_routes + hook_routes
ALL_ROUTES = ROUTES + openapi_routes(ROUTES) + page_routes


def webhook_url(settings: Settings) -> str:
    """Where the sandbox provider delivers payment webhooks: this server unless told otherwise."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + WEBHOOK_PATH
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}{WEBHOOK_PATH}"


def create_app(settings: Settings) -> Starlette:
    catalog = load_catalog(settings.catalog_path)  # a bad catalog stops the server before it listens

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with RedisRuntime(settings) as runtime:
            client = runtime.client
            metrics = Metrics()
            scripts = Scripts.register(client, observe=metrics.script_timer, wait=ReplicaWait.from_settings(settings))
            # The hot path's script on a dedicated pipelined connection (server/script_pipe.py); not
            # with replica waits, whose wrapper sends the script and its WAITAOF on one connection.
            pipe = None
            if not runtime.cluster and not settings.redis_wait_replicas:
                pipe = ScriptPipe.for_url(runtime.url or "", script_source("send_gift"))
            if pipe is not None:
                scripts = dataclasses.replace(scripts, send_gift=TimedScript(pipe, metrics.script_timer("send_gift")))
            hub = RoomHub(settings, metrics=metrics)
            policy = GiftPolicy.from_settings(settings)
            wallets = WalletStore(client, scripts, idempotency_ttl_s=settings.idempotency_ttl_s,
                                  history_len=settings.room_history_len, spend_caps=spend_caps(settings),
                                  policy=policy)
            bank = Bank.build(client, scripts, settings, catalog)
            await bank.rates.reload()  # published rates contradicting the catalog stop the server here
            gift_store: WalletStore | SplitGiftStore = wallets
            recovery: GiftRecovery | None = None
            if runtime.cluster:  # gifts span two slots: debit, credit, complete, and a recovery loop
                broker: RedisBroker | ClusterBroker = ClusterBroker(client, hub, node_client=runtime.node_client)
                gift_store = SplitGiftStore(
                    client, scripts, idempotency_ttl_s=settings.idempotency_ttl_s,
                    history_len=settings.room_history_len, recovery_s=settings.gift_recovery_s,
                    spend_caps=spend_caps(settings), policy=policy,
                    after_debit=crash_after_debit if settings.failpoint == "crash_after_debit" else None)
                recovery = GiftRecovery(client, gift_store, period_s=settings.gift_recovery_s)
            else:
                broker = RedisBroker(client, hub)
            hub.attach_broker(broker)
            history = RoomHistory(client, max_events=settings.resume_max_events)
            viewers = ViewerCounter(client, scripts, hub, interval_s=settings.viewers_interval_s)
            sandbox = SandboxProvider(webhook_url(settings), settings.webhook_secret)
            lives = LiveStore(client, scripts, history_len=settings.room_history_len)
            streaks = StreakSweeper(lives, hub, window_s=settings.streak_window_ms / 1000,
                                    interval_s=settings.streak_sweep_ms / 1000)
            services = Services(
                settings=settings, catalog=catalog, redis=client, wallets=wallets,
                orders=OrderStore(client, scripts),
                lives=lives,
                gifts=GiftService(catalog, gift_store, bank.profiles, bank.rates,
                                  require_birth_date=settings.require_birth_date),
                hub=hub, history=history, viewers=viewers, sandbox=sandbox, redis_ready=runtime.ready,
                connections=AddressLimit(settings.max_connections_per_address), metrics=metrics, bank=bank,
                user_frames=UserBuckets(settings.user_frame_rate_per_s, settings.user_frame_burst),
            )
            hub.attach_history(history, services.room_snapshot)
            await broker.start()
            await viewers.start()
            streaks.start()
            if recovery is not None:
                await recovery.start()
            dispatcher = HookDispatcher(client, scripts, settings)
            dispatcher.start()
            try:
                yield {"services": services, "giftcast": services, "hooks": HookStore(client)}
            finally:
                await dispatcher.stop()
                if recovery is not None:
                    await recovery.stop()
                await viewers.stop()
                await sandbox.aclose()
                await streaks.stop()
                await broker.stop()
                await hub.aclose()
                await history.aclose()
                if pipe is not None:
                    await pipe.aclose()

    return Starlette(routes=ALL_ROUTES,
                     exception_handlers=exception_handlers, lifespan=lifespan, middleware=[Middleware(ObservedHTTP)])
