-- credit_order: a payment for a recharge order succeeded; credit its coins exactly once.
-- Every check happens before the first write; a repeated delivery changes nothing.
--
-- KEYS[1] order:{u:BUYER}:ORDER      hash   status, coins, bonus_coins, price, currency, ...
-- KEYS[2] wallet:{u:BUYER}           hash   coins
-- KEYS[3] ledger:{u:BUYER}           stream buyer's ledger
-- ARGV[1] order id   ARGV[2] provider payment id   ARGV[3] amount paid (minor units)
-- ARGV[4] currency paid   ARGV[5] payment method
--
-- Returns {"ok", balance, credited_coins, replay} (replay 1 when this payment was already
-- credited), or {"err", code}: unknown_order, order_state (order failed, or credited by a
-- different payment, or not payable), invalid_field (amount or currency differ from the order).

local order = redis.call('HMGET', KEYS[1], 'status', 'coins', 'bonus_coins', 'price', 'currency',
  'payment_id')
local status = order[1]
if not status then return {'err', 'unknown_order'} end
if status == 'paid' then
  if order[6] ~= ARGV[2] then return {'err', 'order_state'} end
  local balance = tonumber(redis.call('HGET', KEYS[2], 'coins') or '0')
  return {'ok', balance, tonumber(order[2]) + tonumber(order[3]), 1}
end
-- A failed attempt may be followed by a successful one (the buyer retries the checkout).
if status ~= 'pending' and status ~= 'failed' then return {'err', 'order_state'} end
if order[4] ~= ARGV[3] or order[5] ~= ARGV[4] then return {'err', 'invalid_field'} end

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local coins = tonumber(order[2])
local bonus = tonumber(order[3])
local ref = 'order:' .. ARGV[1]

redis.call('HSET', KEYS[1], 'status', 'paid', 'payment_id', ARGV[2], 'method', ARGV[5], 'paid_at', ts)
local balance = redis.call('HINCRBY', KEYS[2], 'coins', coins)
redis.call('XADD', KEYS[3], '*', 'kind', 'recharge', 'unit', 'coins', 'delta', coins,
  'balance', balance, 'ref', ref, 'payment', ARGV[2], 'price', order[4], 'currency', order[5], 'ts', ts)
if bonus > 0 then
  balance = redis.call('HINCRBY', KEYS[2], 'coins', bonus)
  redis.call('XADD', KEYS[3], '*', 'kind', 'bonus', 'unit', 'coins', 'delta', bonus,
    'balance', balance, 'ref', ref, 'reason', 'bundle_bonus', 'ts', ts)
end
return {'ok', balance, coins + bonus, 0}
