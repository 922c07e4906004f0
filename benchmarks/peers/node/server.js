// Node socket.io peer: giftcast's job on socket.io 4 + @socket.io/redis-adapter (ioredis).
//
// Events: "join" {room} -> ack {seq}; "gift" {room, gift_id, count, key} -> server/lua/send_gift.lua
// (same KEYS/ARGV as giftcast; key names mirror server/keys.py), then io.to(room).emit("gift", event)
// (local members directly, other processes through the Redis adapter) and the receipt as the ack
// (or {error: code}). Auth: giftcast's bearer token in the Socket.IO auth payload, checked once.
//
// On Redis Cluster (REDIS_URL redis+cluster://HOST:PORT, scenario 8) a gift spans two slots, so it
// runs giftcast's split path (server/split_gift.py) step for step: index the attempt, gift_debit.lua
// (sender's slot), gift_credit.lua (creator's slot), gift_complete.lua (sender's slot), unindex; and
// the adapter runs on ioredis Cluster clients (PUBLISH reaches every node).
//
// Env: REDIS_URL, GIFTCAST_TOKEN_SECRET, BENCH_GIFT_PRICES (JSON gift id -> coins). Args: --port N.
"use strict";

const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const zlib = require("node:zlib");
const Redis = require("ioredis");
const { decode } = require("@msgpack/msgpack");
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
const script = (name) => fs.readFileSync(path.join(luaDir, `${name}.lua`), "utf8")
  .replace(/^--#include ([a-z_]+)$/gm, (_, lib) => fs.readFileSync(path.join(luaDir, `${lib}.lua`), "utf8"));
const RECOVERY_MS = 5000; // GIFTCAST_GIFT_RECOVERY_S's default
const GIFT_PARTITIONS = 16;
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
  outbox: (id) => `outbox:${tag(id)}`,
  credited: (id, ref) => `credited:${tag(id)}:${ref}`,
  inflight: (sender) => `inflight:{g:${zlib.crc32(sender) % GIFT_PARTITIONS}}`,
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

function connect(url) {
  if (!url.startsWith("redis+cluster://")) return new Redis(url);
  const seed = new URL(url.replace("redis+cluster://", "redis://"));
  return new Redis.Cluster([{ host: seed.hostname, port: Number(seed.port) }]);
}

// One node: send_gift.lua, both halves in one script. Returns the receipt array or throws.
async function giftOneNode(redis, sender, room, giftId, count, key, coins, diamonds) {
  return redis.sendGift(
    keys.wallet(sender), keys.ledger(sender), keys.idem(sender, key), keys.wallet(room),
    keys.ledger(room), keys.live(room), keys.liveTop(room), keys.history(room), keys.limits(sender),
    keys.rate(sender), keys.streaks(room), keys.streakEnds(room), keys.topWeek(room), keys.topAll(room),
    sender, room, giftId, count, coins, diamonds, RATE_BP, `${room}|${giftId}|${count}`,
    IDEMPOTENCY_TTL_S, HISTORY_LEN, keys.channel(room), key, ...SPEND_CAPS, 1,
    0, 1, COMBO.has(giftId) ? 1 : 0, STREAK_WINDOW_MS, WEEKLY_TTL_S);
}

// Redis Cluster: server/split_gift.py's steps 0-4, answering what send_gift.lua would.
async function giftSplit(redis, sender, room, giftId, count, key, coins, diamonds) {
  const index = keys.inflight(sender);
  const attempt = `${sender} ${key} ${crypto.randomBytes(6).toString("hex")}`;
  const started = Date.now();
  const [, [status, liveId]] = await Promise.all([
    redis.zadd(index, started + RECOVERY_MS, attempt), redis.hmget(keys.live(room), "status", "live_id")]);
  const debit = await redis.giftDebitBuffer(
    keys.wallet(sender), keys.ledger(sender), keys.idem(sender, key), keys.outbox(sender),
    keys.limits(sender), keys.rate(sender),
    sender, room, giftId, count, coins, diamonds, RATE_BP, `${room}|${giftId}|${count}`, IDEMPOTENCY_TTL_S,
    key, status || "closed", liveId || "", started + RECOVERY_MS / 2, ...SPEND_CAPS, 1, 0, 1,
    COMBO.has(giftId) ? 1 : 0);
  const outcome = debit[0].toString();
  let reply;
  if (outcome === "debited" || outcome === "pending") {
    const g = decode(debit[1]);
    const credit = await redis.giftCredit(
      keys.wallet(room), keys.ledger(room), keys.live(room), keys.liveTop(room), keys.history(room),
      keys.credited(room, g.ref), keys.streaks(room), keys.streakEnds(room), keys.topWeek(room), keys.topAll(room),
      debit[1], HISTORY_LEN, keys.channel(room), IDEMPOTENCY_TTL_S, STREAK_WINDOW_MS, WEEKLY_TTL_S);
    if (credit[0] === "stale") throw new Error("stale");
    await redis.giftComplete(keys.outbox(sender), keys.idem(sender, key), key, credit[1], credit[2]);
    reply = ["ok", credit[1], g.coins, g.balance, g.diamonds, credit[2], g.rate, g.ts, g.live_id,
      outcome === "pending" ? 1 : 0];
  } else if (outcome === "done") {
    reply = ["ok", ...debit[1].map((v) => (Buffer.isBuffer(v) ? v.toString() : v)), 1];
  } else {
    reply = ["err", debit[1].toString()];
  }
  await redis.zrem(index, attempt);
  return reply;
}

async function main() {
  const redis = connect(process.env.REDIS_URL);
  const cluster = redis instanceof Redis.Cluster;
  const pub = redis.duplicate();
  const sub = redis.duplicate();
  redis.defineCommand("sendGift", { numberOfKeys: 14, lua: script("send_gift") });
  redis.defineCommand("giftDebit", { numberOfKeys: 6, lua: script("gift_debit") });
  redis.defineCommand("giftCredit", { numberOfKeys: 10, lua: script("gift_credit") });
  redis.defineCommand("giftComplete", { numberOfKeys: 2, lua: script("gift_complete") });
  const gift = cluster ? giftSplit : giftOneNode;

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
        reply = await gift(redis, sender, room, giftId, count, key, coins, diamonds);
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
