-- set_goal: the creator sets the diamond goal of the current live, and the room is told.
-- Moves no money. The goal is a target for the live's diamonds (`diamonds` in the live hash);
-- opening a new live clears it (set_live_state.lua).
--
-- KEYS[1] live:{u:CREATOR}         hash   status, live_id, seq, epoch, goal, ...
-- KEYS[2] live:{u:CREATOR}:history stream recent room events (id = SEQ-0)
-- ARGV[1] creator id   ARGV[2] goal in diamonds (0 clears it)   ARGV[3] history max length
-- ARGV[4] room channel
--
-- Returns {"ok", seq, goal}, or {"err", code}: invalid_field (goal not an integer from 0 to
-- 10^12), room_closed (the creator is not live). An error changes nothing.

local goal = tonumber(ARGV[2])
if goal == nil or goal ~= math.floor(goal) or goal < 0 or goal > 1000000000000 then
  return {'err', 'invalid_field'}
end
local live = redis.call('HMGET', KEYS[1], 'status', 'live_id', 'epoch')
if live[1] ~= 'open' then return {'err', 'room_closed'} end

-- Checks done; from here on only writes.
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[1], 'goal', goal)
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = cmsgpack.pack({
  t = 'goal', room = ARGV[1], seq = seq, epoch = live[3], ts = ts, live_id = live[2], diamonds = goal,
})
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], seq .. '-0', 'e', event)
redis.call('SPUBLISH', ARGV[4], event)
return {'ok', seq, goal}
