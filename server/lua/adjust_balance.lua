-- adjust_balance: an admin grants a reward (coins) or corrects a balance (coins or diamonds,
-- either sign), with a reason. Every check happens before the first write; the same key again
-- changes nothing.
--
-- KEYS[1] wallet:{u:USER}          hash   coins, diamonds, locked
-- KEYS[2] ledger:{u:USER}          stream the user's ledger
-- KEYS[3] op:{u:USER}:grant:KEY    string msgpack {fp, result} of this grant
-- ARGV[1] kind: "reward" | "adjustment"   ARGV[2] unit: "coins" | "diamonds"   ARGV[3] delta
-- ARGV[4] reason   ARGV[5] admin id   ARGV[6] fingerprint   ARGV[7] idempotency TTL seconds
-- ARGV[8] idempotency key
--
-- Writes one ledger entry of kind ARGV[1] (ref "admin:<key>", reason, admin). A negative
-- adjustment may not take a balance below zero. A coin credit that brings a locked account
-- back to zero or more unlocks it (entry kind unlock, delta 0): this is how an admin settles
-- a charged-back account by hand.
-- Returns {"ok", balance, replay, locked (1 while the wallet is locked)}, or {"err", code}: idempotency_conflict, invalid_count,
-- invalid_field, insufficient_funds. An error changes nothing.

--#include lib_amount

local stored = redis.call('GET', KEYS[3])
if stored then
  local record = cmsgpack.unpack(stored)
  if record.fp ~= ARGV[6] then return {'err', 'idempotency_conflict'} end
  return {'ok', record.result[1], 1, redis.call('HEXISTS', KEYS[1], 'locked')}
end

local kind, unit = ARGV[1], ARGV[2]
if not ((kind == 'reward' and unit == 'coins') or (kind == 'adjustment' and (unit == 'coins' or unit == 'diamonds'))) then
  return {'err', 'invalid_field'}
end
local size = amount((string.gsub(ARGV[3], '^-', '')), 1)
if not size or (kind == 'reward' and tonumber(ARGV[3]) < 0) then return {'err', 'invalid_count'} end
local delta = tonumber(ARGV[3])
local balance = tonumber(redis.call('HGET', KEYS[1], unit) or '0')
if delta < 0 and balance + delta < 0 then return {'err', 'insufficient_funds'} end

-- Checks done; from here on only writes.
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ref = 'admin:' .. ARGV[8]
balance = redis.call('HINCRBY', KEYS[1], unit, delta)
redis.call('XADD', KEYS[2], '*', 'kind', kind, 'unit', unit, 'delta', delta, 'balance', balance, 'ref', ref,
  'reason', ARGV[4], 'admin', ARGV[5], 'ts', ts)
if unit == 'coins' and balance >= 0 and redis.call('HDEL', KEYS[1], 'locked') == 1 then
  redis.call('XADD', KEYS[2], '*', 'kind', 'unlock', 'unit', 'coins', 'delta', 0, 'balance', balance,
    'ref', ref, 'ts', ts)
end
redis.call('SET', KEYS[3], cmsgpack.pack({fp = ARGV[6], result = {balance}}), 'EX', ARGV[7])
return {'ok', balance, 0, redis.call('HEXISTS', KEYS[1], 'locked')}
