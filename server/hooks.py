"""Webhooks for integrators: creators register endpoints that get every room event, signed.

Every room event (gift, live open/close, goal, and any type a newer server adds) is already in
the room's history stream, written by the same atomic script that made the change. A webhook is
a cursor into that stream, kept in Redis with its config (`keys.hooks`, `keys.hook_state`). The
gift path does nothing extra for webhooks, so a slow or dead endpoint can only fall behind; it
never slows a gift. Deliveries survive restarts because the events and the cursor are in Redis.

`HookDispatcher` runs in every process: every `hook_poll_ms` it looks for webhooks with
events after their cursor, takes a webhook's lease (SET NX with expiry, so one process delivers
it at a time), POSTs the next batch (at most `BATCH` events, in seq order, see hook_events.py)
signed like the payment webhook (`Giftcast-Signature`, HMAC-SHA256 over "<t>.<body>" with the
webhook's own secret), and moves the cursor on 2xx. Otherwise it retries later with doubling,
jittered delays (`hook_retry_base_ms` up to 10 minutes); the same events go again. Delivery is
at least once: receivers dedupe by (room, seq, t).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from typing import Any

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server import keys, signing
from server.errors import InvalidField, TooManyWebhooks, UnknownWebhook
from server.hook_events import EVENT_TYPES, HookState, history_entry, plan_batch
from server.scripts import Scripts
from server.settings import Settings

__all__ = ["HookStore", "HookDispatcher", "MAX_HOOKS", "BATCH"]

log = logging.getLogger("giftcast.hooks")

MAX_HOOKS = 5  # per creator
BATCH = 100  # events per delivery
MAX_RETRY_S = 600
HOOK_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


class HookStore:
    """Register, list and delete a creator's webhooks."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def register(self, creator: str, url: object, events: object, *, now_ms: int) -> dict[str, Any]:
        """A new webhook, delivering events after the room's current seq. Its secret is returned once."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2048:
            raise InvalidField("url must be an http(s) URL of at most 2048 characters")
        if events is None:
            events = list(EVENT_TYPES)
        if not isinstance(events, list) or not events or any(e not in EVENT_TYPES for e in events):
            raise InvalidField(f"events must be a non-empty list of {', '.join(EVENT_TYPES)}")
        if await self._client.hlen(keys.hooks(creator)) >= MAX_HOOKS:
            raise TooManyWebhooks(f"a creator may have at most {MAX_HOOKS} webhooks")
        # One read: the cursor and the derived totals describe the same moment.
        seq, diamonds, goal = await self._client.hmget(keys.live(creator), ["seq", "diamonds", "goal"])
        hook = {"id": "wh_" + secrets.token_hex(8), "url": url, "events": sorted(set(events)),
                "secret": secrets.token_urlsafe(32), "created_at": now_ms}
        state = HookState(_int(seq), _int(diamonds), _int(goal))
        async with self._client.pipeline(transaction=True) as pipe:  # one slot: the creator's
            pipe.hset(keys.hook_state(creator, hook["id"]), mapping={**state.to_fields(), "attempts": 0, "next_at": 0})
            pipe.hset(keys.hooks(creator), hook["id"], json.dumps(hook))
            await pipe.execute()
        await self._client.sadd(keys.HOOK_CREATORS, creator)  # another slot on a cluster
        return hook

    async def list(self, creator: str) -> list[dict[str, Any]]:
        """The creator's webhooks with their delivery state; secrets left out."""
        configs = await self._client.hgetall(keys.hooks(creator))
        listed = []
        for raw in sorted(configs.values()):
            hook = json.loads(raw)
            state = await self._client.hgetall(keys.hook_state(creator, hook["id"]))
            listed.append({k: v for k, v in hook.items() if k != "secret"} | {
                "delivered_seq": _int(state.get(b"seq")), "attempts": _int(state.get(b"attempts")),
                "last_error": state.get(b"last_error", b"").decode()})
        return listed

    async def delete(self, creator: str, hook_id: str) -> None:
        if not set(hook_id) <= HOOK_ID_CHARS or not await self._client.hdel(keys.hooks(creator), hook_id):
            raise UnknownWebhook(f"no webhook {hook_id[:40]!r}")
        await self._client.delete(keys.hook_state(creator, hook_id))


class HookDispatcher:
    """Delivers every registered webhook's pending events (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, scripts: Scripts, settings: Settings) -> None:
        self._client = client
        self._scripts = scripts
        self._poll_s = settings.hook_poll_ms / 1000
        self._timeout_s = settings.hook_timeout_s
        self._retry_base_s = settings.hook_retry_base_ms / 1000
        self._http = httpx.AsyncClient(timeout=settings.hook_timeout_s, follow_redirects=False)
        self._busy: set[tuple[str, str]] = set()  # webhooks this process is delivering now
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop looking for work; deliveries in progress are cancelled and release their lease."""
        self._stopping = True
        for task in (self._loop_task, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._loop_task, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._http.aclose()

    async def _run(self) -> None:
        # The flag, not only the cancellation, ends the loop: a Redis command cancelled mid-way can
        # surface as a connection error instead of CancelledError, which the loop would survive.
        while not self._stopping:
            try:
                await self.poll()
            except Exception:  # a background loop: log, and look again at the next tick
                if not self._stopping:
                    log.warning("webhook poll failed; trying again", exc_info=True)
            await asyncio.sleep(self._poll_s)

    async def poll(self) -> None:
        """Start a delivery for every webhook with due, undelivered events. Never waits for one."""
        for raw_creator in await self._client.smembers(keys.HOOK_CREATORS):
            creator = raw_creator.decode()
            for raw in (await self._client.hgetall(keys.hooks(creator))).values():
                hook = json.loads(raw)
                if (creator, hook["id"]) in self._busy:
                    continue
                self._busy.add((creator, hook["id"]))
                task = asyncio.create_task(self._deliver(creator, hook))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, creator: str, hook: dict[str, Any]) -> None:
        try:
            await self._deliver_next_batch(creator, hook)
        except Exception:  # the next poll tries again; the cursor has not moved
            log.exception("webhook %s of %s: delivery step failed", hook["id"], creator)
        finally:
            self._busy.discard((creator, hook["id"]))

    async def _deliver_next_batch(self, creator: str, hook: dict[str, Any]) -> None:
        state_key, lease_key = keys.hook_state(creator, hook["id"]), keys.hook_lease(creator, hook["id"])
        fields = await self._client.hgetall(state_key)
        now = time.time()
        if _int(fields.get(b"next_at")) > now * 1000:
            return
        state = HookState(_int(fields.get(b"seq")), _int(fields.get(b"live_diamonds")), _int(fields.get(b"goal")))
        entries = await self._client.xrange(keys.live_history(creator), min=f"({state.seq}-0", max="+", count=BATCH)
        if not entries:
            return
        owner = secrets.token_hex(8)
        lease_ms = int((self._timeout_s + 5) * 1000)
        if not await self._client.set(lease_key, owner, nx=True, px=lease_ms):
            return  # another process is delivering it
        lease_keys = [lease_key, state_key, keys.hooks(creator)]
        history = [history_entry(entry_id, data) for entry_id, data in entries]
        batch = plan_batch(state, history, frozenset(hook["events"]))
        try:
            error = await self._post(creator, hook, batch.events) if batch.events else None
        except asyncio.CancelledError:  # stopping: let another process take over now, not at expiry
            with contextlib.suppress(RedisError, TimeoutError):
                async with asyncio.timeout(1):  # never hold up the shutdown for it
                    await self._scripts.hook_update(keys=lease_keys, args=[owner, hook["id"]])
            raise
        attempts = _int(fields.get(b"attempts"))
        if error is None:
            update = {**batch.state.to_fields(), "attempts": 0, "next_at": 0, "last_error": ""}
        else:
            delay_s = random.uniform(0.5, 1.0) * min(MAX_RETRY_S, self._retry_base_s * 2**attempts)
            update = {"attempts": attempts + 1, "next_at": int((now + delay_s) * 1000), "last_error": error}
            log.info("webhook %s of %s failed (%s); retry in %.1f s", hook["id"], creator, error, delay_s)
        args = [owner, hook["id"], *(item for pair in update.items() for item in pair)]
        await self._scripts.hook_update(keys=lease_keys, args=args)

    async def _post(self, creator: str, hook: dict[str, Any], events: list[dict[str, Any]]) -> str | None:
        """POST one batch; None on a 2xx, else what went wrong."""
        body = json.dumps({"hook_id": hook["id"], "room": creator, "events": events}, separators=(",", ":")).encode()
        first, last = events[0].get("seq", events[0].get("from_seq")), events[-1].get("seq", events[-1].get("to_seq"))
        headers = {"content-type": "application/json",
                   "giftcast-signature": signing.signature_header(hook["secret"], int(time.time()), body),
                   "giftcast-delivery": f"{hook['id']}:{first}-{last}"}
        try:
            response = await self._http.post(hook["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        return None if response.is_success else f"HTTP {response.status_code}"
