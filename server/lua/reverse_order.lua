-- reverse_order: a paid recharge was refunded or charged back; take its coins back, once.
-- Every check happens before the first write; a repeated delivery changes nothing.
--
-- KEYS[1] order:{u:BUYER}:ORDER   hash   status, payment_id, credited, price, currency, ...
-- KEYS[2] wallet:{u:BUYER}        hash   coins, locked
-- KEYS[3] ledger:{u:BUYER}        stream buyer's ledger
-- ARGV[1] order id   ARGV[2] kind: "refund" or "chargeback"   ARGV[3] provider reversal id
-- ARGV[4] payment id reversed   ARGV[5] amount (minor units)   ARGV[6] currency
--
-- Removes every coin the order credited (coins and all bonuses): a ledger entry of kind
-- ARGV[2], delta -credited, ref "order:<id>". Coins already spent cannot come back, so the
-- balance may go negative: the wallet is then locked (field locked = "<kind>:<order id>",
-- `locked` 1 on the entry) and may not gift or buy goods until a recharge or an admin
-- adjustment brings it back to zero or more (see credit_order.lua, adjust_balance.lua).
-- The order's status becomes "refunded" or "charged_back". Only whole payments are reversed.
--
-- Returns {"ok", balance, removed, locked (0/1), replay}, or {"err", code}: unknown_order,
-- order_state (not paid, paid by another payment, or already reversed by another reversal),
-- invalid_field (amount or currency differ from the order's price).

local order = redis.call('HMGET', KEYS[1], 'status', 'payment_id', 'credited', 'price', 'currency',
  'reversal_id', 'coins', 'bonus_coins')
local status = order[1]
if not status then return {'err', 'unknown_order'} end
local removed = tonumber(order[3]) or (tonumber(order[7]) + tonumber(order[8]))
if status == 'refunded' or status == 'charged_back' then
  if order[6] ~= ARGV[3] then return {'err', 'order_state'} end
  local balance = tonumber(redis.call('HGET', KEYS[2], 'coins') or '0')
  local locked = redis.call('HEXISTS', KEYS[2], 'locked')
  return {'ok', balance, removed, locked, 1}
end
if status ~= 'paid' or order[2] ~= ARGV[4] then return {'err', 'order_state'} end
if ARGV[2] ~= 'refund' and ARGV[2] ~= 'chargeback' then return {'err', 'invalid_field'} end
if order[4] ~= ARGV[5] or order[5] ~= ARGV[6] then return {'err', 'invalid_field'} end

-- Checks done; from here on only writes.
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local balance = redis.call('HINCRBY', KEYS[2], 'coins', -removed)
local locked = 0
if balance < 0 then
  redis.call('HSETNX', KEYS[2], 'locked', ARGV[2] .. ':' .. ARGV[1])
  locked = 1
end
redis.call('HSET', KEYS[1], 'status', ARGV[2] == 'refund' and 'refunded' or 'charged_back',
  'reversal_id', ARGV[3], 'reversed_at', ts)
redis.call('XADD', KEYS[3], '*', 'kind', ARGV[2], 'unit', 'coins', 'delta', -removed, 'balance', balance,
  'ref', 'order:' .. ARGV[1], 'payment', ARGV[4], 'reversal', ARGV[3], 'locked', locked, 'ts', ts)
return {'ok', balance, removed, locked, 0}
