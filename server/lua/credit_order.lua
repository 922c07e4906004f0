-- credit_order: a payment for a recharge order succeeded; credit its coins exactly once.
-- Every check happens before the first write; a repeated delivery changes nothing.
--
-- KEYS[1] order:{u:BUYER}:ORDER      hash   status, coins, bonus_coins, price, currency, promotions
-- KEYS[2] wallet:{u:BUYER}           hash   coins, first_recharge, locked
-- KEYS[3] ledger:{u:BUYER}           stream buyer's ledger
-- ARGV[1] order id   ARGV[2] provider payment id   ARGV[3] amount paid (minor units)
-- ARGV[4] currency paid   ARGV[5] payment method
--
-- Credits, each its own ledger entry sharing ref "order:<id>": the bundle's coins (recharge),
-- its volume bonus (bonus, reason bundle_bonus), the campaign bonus the order recorded at
-- creation (bonus, campaign:<id>) and, only if this is the buyer's first paid recharge ever
-- (wallet field first_recharge, set here), the first-recharge bonus (bonus, first_recharge:<id>).
-- A locked account (a reversed payment left it negative) is unlocked when the balance is back
-- at zero or more (ledger entry kind unlock, delta 0).
--
-- Returns {"ok", balance, credited_coins, replay, locked} (replay 1 when this payment was
-- already credited; locked 1 while the wallet is still locked), or {"err", code}: unknown_order, order_state (order failed, or credited by a
-- different payment, or not payable), invalid_field (amount or currency differ from the order).

local order = redis.call('HMGET', KEYS[1], 'status', 'coins', 'bonus_coins', 'price', 'currency',
  'payment_id', 'credited', 'promo', 'promo_bonus', 'first_promo', 'first_bonus')
local status = order[1]
if not status then return {'err', 'unknown_order'} end
if status == 'paid' then
  if order[6] ~= ARGV[2] then return {'err', 'order_state'} end
  local balance = tonumber(redis.call('HGET', KEYS[2], 'coins') or '0')
  -- (orders paid before `credited` was recorded credited coins + bonus)
  return {'ok', balance, tonumber(order[7]) or (tonumber(order[2]) + tonumber(order[3])), 1,
    redis.call('HEXISTS', KEYS[2], 'locked')}
end
-- A failed attempt may be followed by a successful one (the buyer retries the checkout).
if status ~= 'pending' and status ~= 'failed' then return {'err', 'order_state'} end
if order[4] ~= ARGV[3] or order[5] ~= ARGV[4] then return {'err', 'invalid_field'} end

local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ref = 'order:' .. ARGV[1]
local credited = 0
local balance

local function credit(kind, amount, extra)
  if amount <= 0 then return end
  balance = redis.call('HINCRBY', KEYS[2], 'coins', amount)
  credited = credited + amount
  redis.call('XADD', KEYS[3], '*', 'kind', kind, 'unit', 'coins', 'delta', amount, 'balance', balance,
    'ref', ref, unpack(extra))
end

redis.call('HSET', KEYS[1], 'status', 'paid', 'payment_id', ARGV[2], 'method', ARGV[5], 'paid_at', ts)
credit('recharge', tonumber(order[2]), {'payment', ARGV[2], 'price', order[4], 'currency', order[5], 'ts', ts})
credit('bonus', tonumber(order[3]), {'reason', 'bundle_bonus', 'ts', ts})
credit('bonus', tonumber(order[9] or '0'), {'reason', 'campaign:' .. (order[8] or ''), 'ts', ts})
if redis.call('HSETNX', KEYS[2], 'first_recharge', ARGV[1]) == 1 then
  credit('bonus', tonumber(order[11] or '0'), {'reason', 'first_recharge:' .. (order[10] or ''), 'ts', ts})
end
redis.call('HSET', KEYS[1], 'credited', credited)
if balance >= 0 and redis.call('HDEL', KEYS[2], 'locked') == 1 then
  redis.call('XADD', KEYS[3], '*', 'kind', 'unlock', 'unit', 'coins', 'delta', 0, 'balance', balance,
    'ref', ref, 'ts', ts)
end
return {'ok', balance, credited, 0, redis.call('HEXISTS', KEYS[2], 'locked')}
