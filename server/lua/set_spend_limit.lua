-- set_spend_limit: a user sets their own spending limit for a day or a week. Lowering it (or
-- setting one where there was none) applies at once; raising or removing it applies only after
-- a delay, so a moment's impulse cannot lift a limit the user set in a calmer one. Moves no money.
--
-- KEYS[1] limits:{u:USER}   hash   self_d, self_w, self_<p>_next, self_<p>_next_at (lib_limits)
-- ARGV[1] period: "d" | "w"   ARGV[2] new limit in coins, or "none"   ARGV[3] raise delay, ms
--
-- Returns {"ok", in_force, next, next_at} ("none" for no limit; next and next_at are "" when no
-- raise is waiting), or {"err", "invalid_field"}.

--#include lib_amount
--#include lib_limits

local period = ARGV[1]
if period ~= 'd' and period ~= 'w' then return {'err', 'invalid_field'} end
local new = nil
if ARGV[2] ~= 'none' then
  new = amount(ARGV[2], 1)
  if not new then return {'err', 'invalid_field'} end
end
local delay = amount(ARGV[3], 0)
if not delay then return {'err', 'invalid_field'} end

-- Checks done; from here on only writes.
local _, now_ms = now_s_ms()
local f = 'self_' .. period
local current = self_limit(KEYS[1], period, now_ms)
if new ~= nil and (current == nil or new <= current) then
  redis.call('HSET', KEYS[1], f, new)
  redis.call('HDEL', KEYS[1], f .. '_next', f .. '_next_at')
  return {'ok', tostring(new), '', ''}
end
if new == nil and current == nil then
  redis.call('HDEL', KEYS[1], f .. '_next', f .. '_next_at')
  return {'ok', 'none', '', ''}
end
-- A raise waiting from before is replaced; the limit in force (perhaps that raise, if it is
-- due) stays until the new raise is due.
local in_force = current and tostring(current) or 'none'
local at = now_ms + delay
redis.call('HSET', KEYS[1], f, in_force, f .. '_next', ARGV[2], f .. '_next_at', at)
return {'ok', in_force, ARGV[2], tostring(at)}
