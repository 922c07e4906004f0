-- fail_order: a payment for a pending order failed; mark the order failed. Moves no coins.
--
-- KEYS[1] order:{u:BUYER}:ORDER   hash   status, ...
-- ARGV[1] provider payment id     ARGV[2] failure reason
--
-- Returns {"ok", status} (status is the order's status afterwards: "failed", or "paid" when the
-- order was already paid — a late failure never undoes a success), or {"err", "unknown_order"}.

local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'err', 'unknown_order'} end
if status ~= 'pending' then return {'ok', status} end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'status', 'failed', 'failed_payment_id', ARGV[1], 'failure', ARGV[2],
  'failed_at', tonumber(now[1]) * 1000)
return {'ok', 'failed'}
