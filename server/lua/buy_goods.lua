-- buy_goods: a user buys virtual goods with coins, into their inventory. One atomic script;
-- every check happens before the first write; the same key again charges nothing.
--
-- KEYS[1] wallet:{u:BUYER}          hash   coins, locked
-- KEYS[2] ledger:{u:BUYER}          stream buyer's ledger
-- KEYS[3] op:{u:BUYER}:goods:KEY    string msgpack {fp, result} of this purchase
-- KEYS[4] inventory:{u:BUYER}       hash   good id -> count owned
-- KEYS[5] limits:{u:BUYER}          hash   spending counters and self-set limits (lib_limits)
-- ARGV[1] good id   ARGV[2] count   ARGV[3] coins (total)   ARGV[4] fingerprint
-- ARGV[5] idempotency TTL seconds   ARGV[6] idempotency key
-- ARGV[7] platform spending cap per day (coins)   ARGV[8] per week
--
-- Writes a ledger entry kind "purchase" (coins, -coins, ref "goods:<key>", good, count, key).
-- Returns {"ok", coins, balance, owned, ts_ms, replay} (replay 1: KEY seen before with the same
-- fingerprint, its first result), or {"err", code}: idempotency_conflict, invalid_count,
-- account_locked, insufficient_funds, spending_limit. An error changes nothing.

--#include lib_amount
--#include lib_limits

local stored = redis.call('GET', KEYS[3])
if stored then
  local record = cmsgpack.unpack(stored)
  if record.fp ~= ARGV[4] then return {'err', 'idempotency_conflict'} end
  local r = record.result
  return {'ok', r[1], r[2], r[3], r[4], 1}
end

local count = amount(ARGV[2], 1)
local coins = amount(ARGV[3], 1)
if not (count and coins) then return {'err', 'invalid_count'} end
local refusal, count_spending = check_spending(KEYS[1], KEYS[5], coins, ARGV[7], ARGV[8])
if refusal then return {'err', refusal} end

-- Checks done; from here on only writes.
count_spending()
local _, ts = now_s_ms()
local balance = redis.call('HINCRBY', KEYS[1], 'coins', -coins)
local owned = redis.call('HINCRBY', KEYS[4], ARGV[1], count)
redis.call('XADD', KEYS[2], '*', 'kind', 'purchase', 'unit', 'coins', 'delta', -coins, 'balance', balance,
  'ref', 'goods:' .. ARGV[6], 'good', ARGV[1], 'count', count, 'key', ARGV[6], 'ts', ts)
local result = {coins, balance, owned, ts}
redis.call('SET', KEYS[3], cmsgpack.pack({fp = ARGV[4], result = result}), 'EX', ARGV[5])
return {'ok', coins, balance, owned, ts, 0}
