-- set_goal: set a creator's diamond goal (the target the overlay's goal bar fills up to) and
-- publish it to the room. Idempotent: setting the goal it already has changes nothing.
-- The goal is compared with the current live's diamonds; it is kept across lives until changed,
-- and 0 clears it.
--
-- KEYS[1] live:{u:CREATOR}         hash   status, live_id, seq, epoch, goal, ...
-- KEYS[2] live:{u:CREATOR}:history stream recent room events (id = SEQ-0)
-- ARGV[1] creator id   ARGV[2] goal in diamonds (integer, 0 .. 10^12)   ARGV[3] history max length
-- ARGV[4] room channel
--
-- Returns {changed (0/1), goal, seq}

local goal = tonumber(ARGV[2])
if goal == nil or goal ~= math.floor(goal) or goal < 0 or goal > 1000000000000 then
  return redis.error_reply('bad goal')
end
local live = redis.call('HMGET', KEYS[1], 'goal', 'seq', 'epoch', 'live_id')
if tonumber(live[1] or '0') == goal then
  return {0, goal, tonumber(live[2] or '0')}
end

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
-- Same epoch rule as set_live_state.lua: a room's history is named when its first event is.
local epoch = live[3]
if not epoch then
  epoch = now[1] .. now[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
redis.call('HSET', KEYS[1], 'goal', ARGV[2])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = cmsgpack.pack({
  t = 'goal', room = ARGV[1], seq = seq, epoch = epoch, ts = ts, live_id = live[4] or '', diamonds = goal,
})
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'e', event)
redis.call('SPUBLISH', ARGV[4], event)
return {1, goal, seq}
