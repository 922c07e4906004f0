// Node socket.io peer: giftcast's job on socket.io 4 + @socket.io/redis-adapter (ioredis).
//
// Events: "join" {room} -> ack {seq}; "gift" {room, gift_id, count, key} -> server/lua/send_gift.lua
// (same KEYS/ARGV as giftcast; key names mirror server/keys.py), then io.to(room).emit("gift", event)
// (local members directly, other processes through the Redis adapter) and the receipt as the ack
// (or {error: code}). Auth: giftcast's bearer token in the Socket.IO auth payload, checked once.
//
// Env: REDIS_URL, GIFTCAST_TOKEN_SECRET, BENCH_GIFT_PRICES (JSON gift id -> coins). Args: --port N.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const Redis = require("ioredis");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
const secret = process.env.GIFTCAST_TOKEN_SECRET;
const prices = JSON.parse(process.env.BENCH_GIFT_PRICES);
const RATE_BP = 10000;
const IDEMPOTENCY_TTL_S = 48 * 3600;
const HISTORY_LEN = 10000;
// server/scripts.py: each `--#include NAME` line is replaced by server/lua/NAME.lua
const luaDir = path.join(__dirname, "..", "..", "..", "server", "lua");
const lua = fs.readFileSync(path.join(luaDir, "send_gift.lua"), "utf8")
  .replace(/^--#include ([a-z_]+)$/gm, (_, name) => fs.readFileSync(path.join(luaDir, `${name}.lua`), "utf8"));
// giftcast's spending caps, as the harness sets them for every target (see benchmarks/targets.py)
const SPEND_CAPS = [process.env.GIFTCAST_SPEND_CAP_DAY_COINS, process.env.GIFTCAST_SPEND_CAP_WEEK_COINS];

// server/keys.py
const tag = (id) => `{u:${id}}`;
const keys = {
  wallet: (id) => `wallet:${tag(id)}`,
  ledger: (id) => `ledger:${tag(id)}`,
  idem: (id, key) => `idem:${tag(id)}:${key}`,
  live: (id) => `live:${tag(id)}`,
  liveTop: (id) => `live:${tag(id)}:top`,
  history: (id) => `live:${tag(id)}:history`,
  channel: (id) => `room:${tag(id)}`,
  limits: (id) => `limits:${tag(id)}`,
  rate: (id) => `rate:${tag(id)}:gifts`,
  streaks: (id) => `live:${tag(id)}:streaks`,
  streakEnds: (id) => `live:${tag(id)}:streak_ends`,
  topWeek: (id) => `top:${tag(id)}:week:bench`, // giftcast names the ISO week; the cost is the same
  topAll: (id) => `top:${tag(id)}:all`,
};
const STREAK_WINDOW_MS = 3000;
const WEEKLY_TTL_S = 35 * 86400;
const COMBO = new Set(["rose", "tiktok", "ice_cream", "panda", "love_bang", "sun_cream"]);

// server/auth.py: gc1.<base64url claims>.<base64url hmac-sha256("gc1.<claims>")>
function verifyToken(token) {
  if (typeof token !== "string") throw new Error("token_missing");
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "gc1") throw new Error("token_invalid");
  const mac = crypto.createHmac("sha256", secret).update(`gc1.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== mac.length || !crypto.timingSafeEqual(given, mac)) throw new Error("token_invalid");
  const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  if (claims.aud !== "giftcast" || typeof claims.sub !== "string") throw new Error("token_invalid");
  if (!(claims.exp > Date.now() / 1000)) throw new Error("token_expired");
  return claims.sub;
}

async function main() {
  const redis = new Redis(process.env.REDIS_URL);
  const pub = redis.duplicate();
  const sub = redis.duplicate();
  redis.defineCommand("sendGift", { numberOfKeys: 14, lua });

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub),
    transports: ["websocket"],
    perMessageDeflate: false,
    serveClient: false,
  });

  io.use((socket, next) => {
    try {
      socket.data.user = verifyToken(socket.handshake.auth && socket.handshake.auth.token);
      next();
    } catch (err) {
      next(err);
    }
  });

  io.on("connection", (socket) => {
    socket.on("join", async (data, ack) => {
      const room = String(data && data.room);
      socket.join(room);
      const [status, seq] = await redis.hmget(keys.live(room), "status", "seq");
      ack({ room, status: status || "closed", seq: Number(seq || 0) });
    });

    socket.on("gift", async (data, ack) => {
      const sender = socket.data.user;
      const { room, gift_id: giftId, count, key } = data || {};
      if (!socket.rooms.has(room)) return ack({ error: "not_in_room" });
      if (!(giftId in prices) || !Number.isInteger(count) || count < 1 || count > 9999 || typeof key !== "string") {
        return ack({ error: "invalid_field" });
      }
      const coins = prices[giftId] * count;
      const diamonds = Math.floor((coins * RATE_BP) / 10000);
      let reply;
      try {
        reply = await redis.sendGift(
          keys.wallet(sender), keys.ledger(sender), keys.idem(sender, key), keys.wallet(room),
          keys.ledger(room), keys.live(room), keys.liveTop(room), keys.history(room), keys.limits(sender),
          keys.rate(sender), keys.streaks(room), keys.streakEnds(room), keys.topWeek(room), keys.topAll(room),
          sender, room, giftId, count, coins, diamonds, RATE_BP, `${room}|${giftId}|${count}`,
          IDEMPOTENCY_TTL_S, HISTORY_LEN, keys.channel(room), key, ...SPEND_CAPS, 1,
          0, 1, COMBO.has(giftId) ? 1 : 0, STREAK_WINDOW_MS, WEEKLY_TTL_S);
      } catch (err) {
        return ack({ error: "unavailable" });
      }
      if (reply[0] === "err") return ack({ error: reply[1] });
      const [, seq, spent, balance, credited, creatorDiamonds, rate, ts, liveId, replay] = reply;
      if (!replay) {
        io.to(room).emit("gift", {
          t: "gift", room, seq, ts, live_id: liveId, from: sender, gift_id: giftId, count,
          coins: spent, diamonds: credited, creator_diamonds: creatorDiamonds,
        });
      }
      ack({
        seq, coins_spent: spent, balance, diamonds_credited: credited, creator_diamonds: creatorDiamonds,
        rate_bp: rate, ts, live_id: liveId, replay: Boolean(replay),
      });
    });
  });

  httpServer.listen(port, "127.0.0.1", 4096);
  const stop = () => { io.close(); redis.quit(); pub.quit(); sub.quit(); process.exit(0); };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => { console.error(err); process.exit(1); });
