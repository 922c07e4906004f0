-- end_streaks: end a room's combo streaks whose window has passed (or all of them, when the live
-- closes) and publish one streak_end event for each. Each streak is removed in the same atomic
-- step that publishes its end, so however many processes run this at once, every streak ends
-- exactly once.
--
-- KEYS[1] live:{u:CREATOR}              hash   seq, epoch
-- KEYS[2] live:{u:CREATOR}:streaks      hash   streak ID -> msgpack state; SENDER|GIFT -> ID
-- KEYS[3] live:{u:CREATOR}:streak_ends  zset   open streak ids by deadline (ms)
-- KEYS[4] live:{u:CREATOR}:history      stream recent room events (id = SEQ-0)
-- ARGV[1] creator id   ARGV[2] "expired" (deadline before now) or "all"
-- ARGV[3] history max length   ARGV[4] room channel   ARGV[5] most streaks to end in one call
--
-- Returns {ended, next_ms}: how many streaks this call ended, and the milliseconds until the
-- earliest open streak expires (0: expired ones remain beyond the per-call limit; -1: none open).

local mode = ARGV[2]
if mode ~= 'expired' and mode ~= 'all' then return redis.error_reply('bad mode') end
local limit = tonumber(ARGV[5])

local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local ids
if mode == 'all' then
  ids = redis.call('ZRANGE', KEYS[3], 0, limit - 1)
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', string.format('(%d', now), 'LIMIT', 0, limit)
end

local epoch = redis.call('HGET', KEYS[1], 'epoch')
local ended = 0
for _, id in ipairs(ids) do
  local state = redis.call('HGET', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[2], id)
  if state then
    local s = cmsgpack.unpack(state)
    local pair = s.from .. '|' .. s.gift_id
    if redis.call('HGET', KEYS[2], pair) == id then redis.call('HDEL', KEYS[2], pair) end
    local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
    local event = cmsgpack.pack({
      t = 'streak_end', room = ARGV[1], seq = seq, epoch = epoch, ts = now, live_id = s.live_id,
      streak_id = s.id, from = s.from, gift_id = s.gift_id, count = s.count, coins = s.coins,
    })
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'e', event)
    redis.call('SPUBLISH', ARGV[4], event)
    ended = ended + 1
  end
end

local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if #first == 0 then return {ended, -1} end
-- A streak expires once its deadline is in the past, i.e. 1 ms after it.
local wait = tonumber(first[2]) + 1 - now
if wait < 1 then wait = 0 end
return {ended, wait}
