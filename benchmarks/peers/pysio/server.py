"""python-socketio with its Redis manager (AsyncRedisManager), under uvicorn: giftcast's job.

Events: `join` {room} → ack {seq}; `gift` {room, gift_id, count, key} → `send_gift.lua`, then
`sio.emit("gift", event, room=room)` (local members directly, other processes through Redis)
and ack with the receipt (or {"error": code}). Auth: giftcast's bearer token in the Socket.IO
auth payload ({"token": ...}), checked once on connect.
"""

from __future__ import annotations

import json
import os
import time

import redis.asyncio as aioredis
import socketio
import uvicorn

from benchmarks.baselines.common import parse_args
from server import keys
from server.auth import verify_token
from server.errors import GiftcastError
from server.leaderboards import WEEKLY_TTL_S, iso_week
from server.scripts import script_source

REDIS_URL = os.environ["REDIS_URL"]
SECRET = os.environ["GIFTCAST_TOKEN_SECRET"]
PRICES: dict[str, int] = json.loads(os.environ["BENCH_GIFT_PRICES"])
RATE_BP = 10_000
IDEMPOTENCY_TTL_S = 48 * 3600
HISTORY_LEN = 10_000
# giftcast's spending caps, as the harness sets them for every target (see targets.py)
SPEND_CAPS = (os.environ["GIFTCAST_SPEND_CAP_DAY_COINS"], os.environ["GIFTCAST_SPEND_CAP_WEEK_COINS"])
STREAK_WINDOW_MS = 3_000  # combo gifts form streaks as in giftcast; no gift rate limit (as the bench runs giftcast)
COMBO = frozenset({"rose", "tiktok", "ice_cream", "panda", "love_bang", "sun_cream"})  # the catalog's combo gifts

sio = socketio.AsyncServer(async_mode="asgi", client_manager=socketio.AsyncRedisManager(REDIS_URL),
                           transports=["websocket"], cors_allowed_origins=[])
app = socketio.ASGIApp(sio)
redis = aioredis.Redis.from_url(REDIS_URL)
send_gift = redis.register_script(script_source("send_gift"))
users: dict[str, str] = {}
rooms: dict[str, set[str]] = {}


@sio.event
async def connect(sid: str, environ: dict, auth: dict | None) -> None:
    try:
        principal = verify_token(SECRET, (auth or {}).get("token"), now=int(time.time()))
    except GiftcastError as exc:
        raise socketio.exceptions.ConnectionRefusedError(exc.code) from None
    users[sid] = principal.user_id
    rooms[sid] = set()


@sio.event
async def disconnect(sid: str, reason: str | None = None) -> None:
    users.pop(sid, None)
    rooms.pop(sid, None)


@sio.event
async def join(sid: str, data: dict) -> dict:
    room = str(data.get("room"))
    await sio.enter_room(sid, room)
    rooms[sid].add(room)
    status, seq = await redis.hmget(keys.live(room), ["status", "seq"])
    return {"room": room, "status": (status or b"closed").decode(), "seq": int(seq or 0)}


@sio.event
async def gift(sid: str, data: dict) -> dict:
    sender, room = users[sid], data.get("room")
    gift_id, count, key = data.get("gift_id"), data.get("count"), data.get("key")
    if room not in rooms[sid]:
        return {"error": "not_in_room"}
    if gift_id not in PRICES or type(count) is not int or not 1 <= count <= 9999 or not isinstance(key, str):
        return {"error": "invalid_field"}
    coins = PRICES[gift_id] * count
    diamonds = coins * RATE_BP // 10_000
    reply = await send_gift(
        keys=[keys.wallet(sender), keys.ledger(sender), keys.idempotency(sender, key), keys.wallet(room),
              keys.ledger(room), keys.live(room), keys.live_top(room), keys.live_history(room), keys.limits(sender),
              keys.gift_rate(sender), keys.live_streaks(room), keys.live_streak_ends(room),
              keys.top_week(room, iso_week(time.time())), keys.top_all(room)],
        args=[sender, room, gift_id, count, coins, diamonds, RATE_BP, f"{room}|{gift_id}|{count}",
              IDEMPOTENCY_TTL_S, HISTORY_LEN, keys.room_channel(room), key, *SPEND_CAPS, 1,
              0, 1, int(gift_id in COMBO), STREAK_WINDOW_MS, WEEKLY_TTL_S])
    if reply[0] == b"err":
        return {"error": reply[1].decode()}
    seq, coins, balance, diamonds, creator_diamonds, rate, ts, live_id, replay = reply[1:]
    receipt = {"seq": seq, "coins_spent": coins, "balance": balance, "diamonds_credited": diamonds,
               "creator_diamonds": creator_diamonds, "rate_bp": rate, "ts": ts, "live_id": live_id.decode(),
               "replay": bool(replay)}
    if not replay:
        await sio.emit("gift", {"t": "gift", "room": room, "seq": seq, "ts": ts, "live_id": receipt["live_id"],
                                "from": sender, "gift_id": gift_id, "count": count, "coins": coins,
                                "diamonds": diamonds, "creator_diamonds": creator_diamonds}, room=room)
    return receipt


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=parse_args().port, loop="uvloop", http="httptools",
                log_level="warning", backlog=4096)
