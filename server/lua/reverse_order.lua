-- reverse_order: a paid recharge was refunded or charged back, wholly or in part; take back
-- that share of its coins, once per reversal. Every check happens before the first write; a
-- repeated delivery changes nothing.
--
-- KEYS[1] order:{u:BUYER}:ORDER   hash   status, payment_id, credited, price, currency,
--                                        reversed_amount, reversed_coins, rev:<reversal id>
-- KEYS[2] wallet:{u:BUYER}        hash   coins, locked
-- KEYS[3] ledger:{u:BUYER}        stream buyer's ledger
-- ARGV[1] order id   ARGV[2] kind: "refund" or "chargeback"   ARGV[3] provider reversal id
-- ARGV[4] payment id reversed   ARGV[5] amount reversed (minor units, 1..what is left)
-- ARGV[6] currency
--
-- A reversal of `amount` out of the order's `price` brings the coins removed from the order so
-- far to ceil(credited * reversed / price), `credited` being every coin the order credited
-- (coins and all bonuses): never fewer than the share of the money returned, and exactly
-- `credited` once the whole price is reversed, however it was split. This reversal removes the
-- difference, as a ledger entry of kind ARGV[2] (ref "order:<id>", with the amount). Coins
-- already spent cannot come back, so the balance may go negative: the wallet is then locked
-- (field locked = "<kind>:<order id>", `locked` 1 on the entry) and may not gift or buy goods
-- until a recharge or an admin adjustment brings it back to zero or more (credit_order.lua,
-- adjust_balance.lua). The order stays "paid" until its whole price is reversed, then becomes
-- "refunded" or "charged_back" (the kind of the reversal that completed it).
--
-- Returns {"ok", balance, removed, locked (0/1), replay}, or {"err", code}: unknown_order,
-- order_state (not paid, paid by another payment, or wholly reversed already), invalid_field
-- (kind, currency, an amount beyond what is left, or a known reversal id with another amount).

--#include lib_amount

local order = redis.call('HMGET', KEYS[1], 'status', 'payment_id', 'credited', 'price', 'currency',
  'coins', 'bonus_coins', 'reversed_amount', 'reversed_coins', 'rev:' .. ARGV[3])
local status = order[1]
if not status then return {'err', 'unknown_order'} end
if order[10] then
  -- rev:<id> = "<amount>:<coins removed>"
  local seen_amount, seen_removed = string.match(order[10], '^(%d+):(%d+)$')
  if seen_amount ~= ARGV[5] then return {'err', 'invalid_field'} end
  local balance = tonumber(redis.call('HGET', KEYS[2], 'coins') or '0')
  return {'ok', balance, tonumber(seen_removed), redis.call('HEXISTS', KEYS[2], 'locked'), 1}
end
if status ~= 'paid' or order[2] ~= ARGV[4] then return {'err', 'order_state'} end
if ARGV[2] ~= 'refund' and ARGV[2] ~= 'chargeback' then return {'err', 'invalid_field'} end
local price = tonumber(order[4])
local reversed_amount = tonumber(order[8] or '0')
local part = amount(ARGV[5], 1)
if order[5] ~= ARGV[6] or not part or reversed_amount + part > price then return {'err', 'invalid_field'} end
local credited = tonumber(order[3]) or (tonumber(order[6]) + tonumber(order[7]))
-- Exact in a double while below 2^53 (catalog bundles are far below: coins * price < 10^11).
if credited * price >= 9007199254740992 then return {'err', 'invalid_field'} end

-- Checks done; from here on only writes.
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
reversed_amount = reversed_amount + part
local reversed_coins = math.ceil(credited * reversed_amount / price)
local removed = reversed_coins - tonumber(order[9] or '0')
local balance = redis.call('HINCRBY', KEYS[2], 'coins', -removed)
local locked = 0
if balance < 0 then
  redis.call('HSETNX', KEYS[2], 'locked', ARGV[2] .. ':' .. ARGV[1])
  locked = 1
end
if reversed_amount == price then
  redis.call('HSET', KEYS[1], 'status', ARGV[2] == 'refund' and 'refunded' or 'charged_back')
end
redis.call('HSET', KEYS[1], 'reversal_id', ARGV[3], 'reversed_at', ts, 'reversed_amount', reversed_amount,
  'reversed_coins', reversed_coins, 'rev:' .. ARGV[3], ARGV[5] .. ':' .. removed)
redis.call('XADD', KEYS[3], '*', 'kind', ARGV[2], 'unit', 'coins', 'delta', -removed, 'balance', balance,
  'ref', 'order:' .. ARGV[1], 'payment', ARGV[4], 'reversal', ARGV[3], 'amount', ARGV[5],
  'currency', ARGV[6], 'locked', locked, 'ts', ts)
return {'ok', balance, removed, locked, 0}
