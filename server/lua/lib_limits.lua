-- lib_limits: day/week windows, spending caps and self-set limits, shared by the scripts that
-- spend coins (send_gift, buy_goods) or withdraw diamonds (request_withdrawal). Not a script by
-- itself: scripts.py pastes it where a script says `--#include lib_limits`.
--
-- A limits:{u:ID} hash holds, per counted flow NAME ("spend": coins on gifts and goods;
-- "withdraw": diamonds asked for):
--   NAME_d_id, NAME_d   the UTC day number (unix seconds // 86400) and the amount counted in it
--   NAME_w_id, NAME_w   the week number ((day + 3) // 7: weeks start on Monday) and its amount
-- and the user's own spending limits (see set_spend_limit.lua):
--   self_d, self_w                     limit in force per day / week, coins ("none" or absent: none)
--   self_d_next, self_d_next_at, ...   a raised limit and when it takes effect (ms)

local function window_ids(now_s)
  local day = math.floor(now_s / 86400)
  return day, math.floor((day + 3) / 7)
end

-- Amounts already counted for NAME in the current day and week.
local function counted(limits, name, day, week)
  local v = redis.call('HMGET', limits, name .. '_d_id', name .. '_d', name .. '_w_id', name .. '_w')
  local d = (v[1] == tostring(day)) and tonumber(v[2]) or 0
  local w = (v[3] == tostring(week)) and tonumber(v[4]) or 0
  return d, w
end

local function add_counted(limits, name, day, week, d, w, amount)
  redis.call('HSET', limits, name .. '_d_id', day, name .. '_d', d + amount,
    name .. '_w_id', week, name .. '_w', w + amount)
end

-- The self-set limit for PERIOD ('d' or 'w') in force at now_ms; nil when there is none.
local function self_limit(limits, period, now_ms)
  local f = 'self_' .. period
  local v = redis.call('HMGET', limits, f, f .. '_next', f .. '_next_at')
  local limit = v[1]
  if v[2] and tonumber(v[3]) <= now_ms then limit = v[2] end
  if limit == false or limit == nil or limit == 'none' then return nil end
  return tonumber(limit)
end

local function now_s_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]), tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- May WALLET's owner spend COINS now? In order: account lock, balance, platform caps
-- (DAY_CAP, WEEK_CAP), self-set limits. Returns an error code, or nil and a function that
-- counts the spending: call it once every other check of the script has passed.
local function check_spending(wallet, limits, coins, day_cap, week_cap)
  if redis.call('HEXISTS', wallet, 'locked') == 1 then return 'account_locked' end
  local balance = tonumber(redis.call('HGET', wallet, 'coins') or '0')
  if balance < coins then return 'insufficient_funds' end
  local now_s, now_ms = now_s_ms()
  local day, week = window_ids(now_s)
  local d, w = counted(limits, 'spend', day, week)
  if d + coins > tonumber(day_cap) or w + coins > tonumber(week_cap) then return 'spending_limit' end
  local self_d, self_w = self_limit(limits, 'd', now_ms), self_limit(limits, 'w', now_ms)
  if (self_d and d + coins > self_d) or (self_w and w + coins > self_w) then return 'spending_limit' end
  return nil, function() add_counted(limits, 'spend', day, week, d, w, coins) end
end
