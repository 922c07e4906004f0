-- gift_creator_side: the creator's half of a gift, in the creator's slot: credit the creator,
-- count the gift in the live, record it in the room's history and publish it to the room. A
-- library: included (`--#include gift_creator_side`, see server/scripts.py) into send_gift (one
-- node: both halves in one script) and gift_credit (Redis Cluster: the creator's step). This is
-- the one place where a gift changes the creator's side; it defines functions only and never
-- reads KEYS or ARGV.
--
-- c (keys, all {u:CREATOR}): c.wallet hash diamonds; c.ledger stream; c.live hash status,
--   live_id, seq, epoch, coins, diamonds, gifts; c.top zset; c.history stream (id = SEQ-0);
--   c.top_week zset (the ISO week of the gift) and c.top_all zset: the creator's top gifters;
--   c.streaks hash (streak ID -> msgpack state; SENDER|GIFT -> ID) and c.streak_ends zset (open
--   streak ids by deadline, ms)
-- g (the gift, amounts as numbers): sender, creator, gift_id, count, coins, diamonds, rate,
--   rate_version (0: a gift debited before versions were recorded),
--   ts (when it was paid), live_id (the live it was sent into), history_len, channel; combo
--   ("1": a combo-able gift), streak_window (ms), week_ttl (seconds)
--
-- credit_creator(c, g) -> seq, creator_diamonds. Writes only: the caller has checked everything.

-- Leaderboards and streaks (issue 4). A combo gift within the window of the same sender's last
-- one of the same gift, in the same open live, extends that streak; otherwise it starts one
-- whose id is the gift's seq. Expired streaks are ended (streak_end event) only by
-- end_streaks.lua, each exactly once. Returns the event's `streak` field (nil: none).
local function rank_and_streak(c, g, seq, live)
  redis.call('ZINCRBY', c.top_week, g.coins, g.sender)
  redis.call('EXPIRE', c.top_week, g.week_ttl)
  redis.call('ZINCRBY', c.top_all, g.coins, g.sender)
  if g.combo ~= '1' or live[1] ~= g.live_id or live[3] ~= 'open' then return nil end
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  local pair = g.sender .. '|' .. g.gift_id
  local id = redis.call('HGET', c.streaks, pair)
  local state = id and redis.call('HGET', c.streaks, id)
  local deadline = id and redis.call('ZSCORE', c.streak_ends, id)
  local s = state and cmsgpack.unpack(state)
  local streak
  if s and deadline and tonumber(deadline) >= now and s.live_id == g.live_id then
    s.count, s.coins = s.count + g.count, s.coins + g.coins
    streak = {id = s.id, count = s.count, phase = 'update'}
  else
    s = {id = seq, from = g.sender, gift_id = g.gift_id, live_id = g.live_id, count = g.count, coins = g.coins}
    redis.call('HSET', c.streaks, pair, seq)
    streak = {id = seq, count = g.count, phase = 'start'}
  end
  redis.call('HSET', c.streaks, s.id, cmsgpack.pack(s))
  redis.call('ZADD', c.streak_ends, now + tonumber(g.streak_window), s.id)
  return streak
end

local function credit_creator(c, g)
  local creator_diamonds = redis.call('HINCRBY', c.wallet, 'diamonds', g.diamonds)
  local live = redis.call('HMGET', c.live, 'live_id', 'epoch', 'status')
  local seq = redis.call('HINCRBY', c.live, 'seq', 1)
  -- On a cluster the live may have ended (or a new one begun) between debit and credit: the
  -- gift counts in the totals and ranking of the live it was sent into, and only there.
  if live[1] == g.live_id then
    redis.call('HINCRBY', c.live, 'coins', g.coins)
    redis.call('HINCRBY', c.live, 'diamonds', g.diamonds)
    redis.call('HINCRBY', c.live, 'gifts', g.count)
    redis.call('ZINCRBY', c.top, g.coins, g.sender)
  end
  local streak = rank_and_streak(c, g, seq, live)
  redis.call('XADD', c.ledger, '*', 'kind', 'gift_received', 'unit', 'diamonds', 'delta', g.diamonds,
    'balance', creator_diamonds, 'ref', g.ref, 'peer', g.sender, 'gift', g.gift_id, 'count', g.count,
    'coins', g.coins, 'rate_bp', g.rate, 'rate_version', g.rate_version or 0, 'ts', g.ts)

  local event = cmsgpack.pack({
    t = 'gift', room = g.creator, seq = seq, epoch = live[2], ts = g.ts, live_id = g.live_id,
    from = g.sender, gift_id = g.gift_id, count = g.count, coins = g.coins, diamonds = g.diamonds,
    creator_diamonds = creator_diamonds, streak = streak,
  })
  redis.call('XADD', c.history, 'MAXLEN', '~', g.history_len, seq .. '-0', 'e', event)
  redis.call('SPUBLISH', g.channel, event)
  return seq, creator_diamonds
end
