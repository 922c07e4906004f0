-- request_withdrawal: a creator asks to withdraw diamonds; hold them atomically. Every check
-- happens before the first write; the same withdrawal id again changes nothing.
--
-- KEYS[1] wallet:{u:CREATOR}                 hash   diamonds, diamonds_held
-- KEYS[2] ledger:{u:CREATOR}                 stream creator's ledger
-- KEYS[3] withdrawal:{u:CREATOR}:WID         hash   the withdrawal (created here)
-- KEYS[4] withdrawals:{u:CREATOR}            zset   the creator's withdrawal ids by creation time
-- KEYS[5] limits:{u:CREATOR}                 hash   withdrawal counters (lib_limits, flow "withdraw")
-- ARGV[1] withdrawal id   ARGV[2] creator id   ARGV[3] diamonds   ARGV[4] cash (minor units)
-- ARGV[5] currency   ARGV[6] region   ARGV[7] rate version   ARGV[8] cash per 1000 diamonds
-- ARGV[9] payout method   ARGV[10] fingerprint   ARGV[11] idempotency key
-- ARGV[12] limit per day (diamonds)   ARGV[13] limit per week
--
-- Moves the diamonds from `diamonds` to `diamonds_held`, recorded as two ledger entries of kind
-- withdrawal_hold sharing ref "withdrawal:<id>" (unit diamonds: -n, with the rate version and
-- cash value; unit diamonds_held: +n), and creates the withdrawal, status "pending".
-- Returns {"ok", diamonds, diamonds_held, replay, created_at_ms} (replay 1: this withdrawal
-- existed with the same fingerprint), or {"err", code}: idempotency_conflict, invalid_count, insufficient_funds,
-- withdrawal_limit. An error changes nothing.

--#include lib_amount
--#include lib_limits

local function balances()
  local b = redis.call('HMGET', KEYS[1], 'diamonds', 'diamonds_held')
  return tonumber(b[1] or '0'), tonumber(b[2] or '0')
end

local seen = redis.call('HGET', KEYS[3], 'fingerprint')
if seen then
  if seen ~= ARGV[10] then return {'err', 'idempotency_conflict'} end
  local diamonds, held = balances()
  return {'ok', diamonds, held, 1, redis.call('HGET', KEYS[3], 'created_at')}
end

local n = amount(ARGV[3], 1)
local cash = amount(ARGV[4], 0)
local day_limit = amount(ARGV[12], 1)
local week_limit = amount(ARGV[13], 1)
if not (n and cash and day_limit and week_limit) then return {'err', 'invalid_count'} end
local diamonds, held = balances()
if diamonds < n then return {'err', 'insufficient_funds'} end
local now_s, ts = now_s_ms()
local day, week = window_ids(now_s)
local d, w = counted(KEYS[5], 'withdraw', day, week)
if d + n > day_limit or w + n > week_limit then return {'err', 'withdrawal_limit'} end

-- Checks done; from here on only writes.
add_counted(KEYS[5], 'withdraw', day, week, d, w, n)
diamonds = redis.call('HINCRBY', KEYS[1], 'diamonds', -n)
held = redis.call('HINCRBY', KEYS[1], 'diamonds_held', n)
redis.call('HSET', KEYS[3], 'id', ARGV[1], 'creator', ARGV[2], 'status', 'pending', 'diamonds', n,
  'cash', cash, 'currency', ARGV[5], 'region', ARGV[6], 'rate_version', ARGV[7],
  'cash_per_1000_diamonds', ARGV[8], 'method', ARGV[9], 'fingerprint', ARGV[10], 'key', ARGV[11],
  'created_at', ts)
redis.call('ZADD', KEYS[4], ts, ARGV[1])
local ref = 'withdrawal:' .. ARGV[1]
redis.call('XADD', KEYS[2], '*', 'kind', 'withdrawal_hold', 'unit', 'diamonds', 'delta', -n, 'balance', diamonds,
  'ref', ref, 'cash', cash, 'currency', ARGV[5], 'rate_version', ARGV[7],
  'cash_per_1000_diamonds', ARGV[8], 'ts', ts)
redis.call('XADD', KEYS[2], '*', 'kind', 'withdrawal_hold', 'unit', 'diamonds_held', 'delta', n,
  'balance', held, 'ref', ref, 'ts', ts)
return {'ok', diamonds, held, 0, ts}
