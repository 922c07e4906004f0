-- set_live_state: open or close a creator's live room, and SPUBLISH the change to the room.
-- Idempotent: opening an open room or closing a closed one changes nothing and reports it.
--
-- KEYS[1] live:{u:CREATOR}         hash   status, live_id, seq, epoch, coins, diamonds, gifts, goal
-- KEYS[2] live:{u:CREATOR}:top     zset   top gifters of the current live (reset on open)
-- KEYS[3] live:{u:CREATOR}:history stream recent room events (id = SEQ-0)
-- ARGV[1] creator id   ARGV[2] "open" or "closed"   ARGV[3] history max length
-- ARGV[4] room channel
--
-- Returns {changed (0/1), status, live_id, seq, epoch}

local state = ARGV[2]
if state ~= 'open' and state ~= 'closed' then return redis.error_reply('bad state') end
local live = redis.call('HMGET', KEYS[1], 'status', 'live_id', 'seq', 'epoch')
local status = live[1] or 'closed'
if status == state then
  return {0, status, live[2] or '', tonumber(live[3] or '0'), live[4] or ''}
end

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
-- The epoch names this room's history: if the data is ever lost, a new epoch tells clients
-- that positions they hold from before are not continuous with what follows.
local epoch = live[4]
if not epoch then
  epoch = now[1] .. now[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end

local live_id = live[2] or ''
if state == 'open' then
  live_id = tostring(redis.call('HINCRBY', KEYS[1], 'lives', 1))
  redis.call('HSET', KEYS[1], 'status', 'open', 'live_id', live_id, 'started_at', ts,
    'coins', 0, 'diamonds', 0, 'gifts', 0, 'goal', 0)
  redis.call('DEL', KEYS[2])
else
  redis.call('HSET', KEYS[1], 'status', 'closed', 'ended_at', ts)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = cmsgpack.pack({
  t = 'live', room = ARGV[1], seq = seq, epoch = epoch, ts = ts, live_id = live_id, state = state,
})
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'e', event)
redis.call('SPUBLISH', ARGV[4], event)
return {1, state, live_id, seq, epoch}
