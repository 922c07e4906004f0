-- send_gift: debit a viewer's coins, credit the creator's diamonds, record and publish the gift.
-- One atomic script; every check happens before the first write.
--
-- KEYS[1] wallet:{u:SENDER}        hash   coins
-- KEYS[2] ledger:{u:SENDER}        stream sender's ledger
-- KEYS[3] idem:{u:SENDER}:KEY      string msgpack {fp, result} of this gift
-- KEYS[4] wallet:{u:CREATOR}       hash   diamonds
-- KEYS[5] ledger:{u:CREATOR}       stream creator's ledger
-- KEYS[6] live:{u:CREATOR}         hash   status, live_id, seq, epoch, coins, diamonds, gifts
-- KEYS[7] live:{u:CREATOR}:top     zset   top gifters of the current live, by coins
-- KEYS[8] live:{u:CREATOR}:history stream recent room events (id = SEQ-0)
-- KEYS[9]  rate:{u:SENDER}:gifts           string sender's gift rate (GCRA theoretical arrival, us)
-- KEYS[10] live:{u:CREATOR}:streaks        hash   streak ID -> msgpack state; SENDER|GIFT -> ID
-- KEYS[11] live:{u:CREATOR}:streak_ends    zset   open streak ids by deadline (ms)
-- KEYS[12] top:{u:CREATOR}:week:YYYY-Www   zset   creator's top gifters this ISO week, by coins
-- KEYS[13] top:{u:CREATOR}:all             zset   creator's all-time top gifters, by coins
-- ARGV[1] sender id        ARGV[2] creator id      ARGV[3] gift id     ARGV[4] count
-- ARGV[5] coins (total)    ARGV[6] diamonds        ARGV[7] rate (bp)   ARGV[8] fingerprint
-- ARGV[9] idempotency TTL seconds   ARGV[10] history max length   ARGV[11] room channel
-- ARGV[12] idempotency key
-- ARGV[13] gift rate: emission interval, us (0: no limit)   ARGV[14] gift rate: burst
-- ARGV[15] "1" if the gift is combo-able (streaks)           ARGV[16] streak window, ms
-- ARGV[17] weekly leaderboard TTL, seconds
--
-- Returns {"ok", seq, coins, balance, diamonds, creator_diamonds, rate_bp, ts_ms, live_id, replay}
-- where replay is 0 for a new gift and 1 when KEY was seen before with the same fingerprint;
-- or {"err", code} with code one of: idempotency_conflict, invalid_count, room_closed,
-- insufficient_funds; or {"err", "rate_limited", retry_after_ms}. An error changes nothing.
-- A replay changes nothing either: it is not rate-limited and does not extend a streak.

local MAX = 1000000000000

local function amount(value, min)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < min or n > MAX then return nil end
  return n
end

local stored = redis.call('GET', KEYS[3])
if stored then
  local record = cmsgpack.unpack(stored)
  if record.fp ~= ARGV[8] then return {'err', 'idempotency_conflict'} end
  local r = record.result
  return {'ok', r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], 1}
end

local count = amount(ARGV[4], 1)
local coins = amount(ARGV[5], 1)
local diamonds = amount(ARGV[6], 0)
local rate = amount(ARGV[7], 0)
if not (count and coins and diamonds and rate) then return {'err', 'invalid_count'} end

-- Viewer side, gift rate (check): GCRA on Redis's clock, so every process shares one limit.
-- The new theoretical arrival time is written below, with the debit: a refused gift costs nothing.
local rate_interval = tonumber(ARGV[13])
local rate_tat, rate_ttl_ms
if rate_interval > 0 then
  local clock = redis.call('TIME')
  local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  rate_tat = math.max(tonumber(redis.call('GET', KEYS[9]) or '0'), now_us) + rate_interval
  local early_us = rate_tat - now_us - rate_interval * tonumber(ARGV[14])
  if early_us > 0 then return {'err', 'rate_limited', math.ceil(early_us / 1000)} end
  rate_ttl_ms = math.ceil((rate_tat - now_us) / 1000)
end

local live = redis.call('HMGET', KEYS[6], 'status', 'live_id', 'epoch')
if live[1] ~= 'open' then return {'err', 'room_closed'} end

local balance = tonumber(redis.call('HGET', KEYS[1], 'coins') or '0')
if balance < coins then return {'err', 'insufficient_funds'} end

-- Checks done; from here on only writes.
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local live_id = live[2]

local new_balance = redis.call('HINCRBY', KEYS[1], 'coins', -coins)
-- Viewer side, gift rate (write).
if rate_tat then redis.call('SET', KEYS[9], rate_tat, 'PX', rate_ttl_ms) end
local creator_diamonds = redis.call('HINCRBY', KEYS[4], 'diamonds', diamonds)
local seq = redis.call('HINCRBY', KEYS[6], 'seq', 1)
redis.call('HINCRBY', KEYS[6], 'coins', coins)
redis.call('HINCRBY', KEYS[6], 'diamonds', diamonds)
redis.call('HINCRBY', KEYS[6], 'gifts', count)
redis.call('ZINCRBY', KEYS[7], coins, ARGV[1])

-- Creator side, leaderboards and streaks -----------------------------------------------------
-- The creator's weekly (expiring) and all-time top gifters, by coins.
redis.call('ZINCRBY', KEYS[12], coins, ARGV[1])
redis.call('EXPIRE', KEYS[12], ARGV[17])
redis.call('ZINCRBY', KEYS[13], coins, ARGV[1])
-- Streak: a combo gift within the window of the same sender's last one of the same gift, in the
-- same live, extends that streak; otherwise it starts one whose id is this gift's seq. Expired
-- streaks are ended (streak_end event) only by end_streaks.lua, each exactly once.
local streak
if ARGV[15] == '1' then
  local pair = ARGV[1] .. '|' .. ARGV[3]
  local id = redis.call('HGET', KEYS[10], pair)
  local state = id and redis.call('HGET', KEYS[10], id)
  local deadline = id and redis.call('ZSCORE', KEYS[11], id)
  local s = state and cmsgpack.unpack(state)
  if s and deadline and tonumber(deadline) >= ts and s.live_id == live_id then
    s.count, s.coins = s.count + count, s.coins + coins
    streak = {id = s.id, count = s.count, phase = 'update'}
  else
    s = {id = seq, from = ARGV[1], gift_id = ARGV[3], live_id = live_id, count = count, coins = coins}
    redis.call('HSET', KEYS[10], pair, seq)
    streak = {id = seq, count = count, phase = 'start'}
  end
  redis.call('HSET', KEYS[10], s.id, cmsgpack.pack(s))
  redis.call('ZADD', KEYS[11], ts + tonumber(ARGV[16]), s.id)
end
-- End of the creator-side streak and leaderboard block ----------------------------------------

local ref = 'gift:' .. ARGV[2] .. ':' .. live_id .. ':' .. seq
redis.call('XADD', KEYS[2], '*', 'kind', 'gift_sent', 'unit', 'coins', 'delta', -coins,
  'balance', new_balance, 'ref', ref, 'peer', ARGV[2], 'gift', ARGV[3], 'count', count,
  'rate_bp', rate, 'key', ARGV[12], 'ts', ts)
redis.call('XADD', KEYS[5], '*', 'kind', 'gift_received', 'unit', 'diamonds', 'delta', diamonds,
  'balance', creator_diamonds, 'ref', ref, 'peer', ARGV[1], 'gift', ARGV[3], 'count', count,
  'coins', coins, 'rate_bp', rate, 'ts', ts)

local event = cmsgpack.pack({
  t = 'gift', room = ARGV[2], seq = seq, epoch = live[3], ts = ts, live_id = live_id,
  from = ARGV[1], gift_id = ARGV[3], count = count, coins = coins, diamonds = diamonds,
  creator_diamonds = creator_diamonds, streak = streak,
})
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[10], seq .. '-0', 'e', event)
redis.call('PUBLISH', ARGV[11], event)

local result = {seq, coins, new_balance, diamonds, creator_diamonds, rate, ts, live_id}
redis.call('SET', KEYS[3], cmsgpack.pack({fp = ARGV[8], result = result}), 'EX', ARGV[9])
return {'ok', seq, coins, new_balance, diamonds, creator_diamonds, rate, ts, live_id, 0}
