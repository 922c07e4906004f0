-- settle_withdrawal: move a withdrawal along pending -> processing -> paid, or to failed
-- (held diamonds go back). Every check happens before the first write; a repeated event
-- (same step, same payout id) changes nothing.
--
-- KEYS[1] withdrawal:{u:CREATOR}:WID   hash   status, diamonds, cash, currency, payout_id, ...
-- KEYS[2] wallet:{u:CREATOR}           hash   diamonds, diamonds_held
-- KEYS[3] ledger:{u:CREATOR}           stream creator's ledger
-- ARGV[1] withdrawal id   ARGV[2] step: "processing" | "paid" | "failed"
-- ARGV[3] payout id ("" for an admin rejecting a pending withdrawal)
-- ARGV[4] who (admin id, or "provider")   ARGV[5] reason (failed)
-- ARGV[6] cash paid, minor units (paid)   ARGV[7] currency paid (paid)
--
-- processing: pending -> processing, recording the payout id sent to the provider (an admin
--   approved it). Again with the same payout id: replay.
-- paid: processing with this payout id -> paid; the held diamonds are paid out: ledger entry
--   kind payout (unit diamonds_held, -n, cash, currency, the rate version that priced it).
-- failed: pending (payout id "": rejected) or processing with this payout id (the provider
--   failed) -> failed; held diamonds return: two entries of kind withdrawal_release
--   (diamonds_held -n, diamonds +n). A failure after paid never undoes it: replay, status paid.
--
-- Returns {"ok", status, replay}, or {"err", code}: unknown_withdrawal, withdrawal_state
-- (the step does not follow from the current state or names another payout), invalid_field
-- (paid with another amount or currency than the withdrawal's cash value).

local w = redis.call('HMGET', KEYS[1], 'status', 'diamonds', 'cash', 'currency', 'payout_id', 'rate_version')
local status, payout = w[1], w[5] or ''
if not status then return {'err', 'unknown_withdrawal'} end
local step = ARGV[2]
if step ~= 'processing' and step ~= 'paid' and step ~= 'failed' then return {'err', 'invalid_field'} end
if status == step and payout == ARGV[3] then return {'ok', status, 1} end
if step == 'failed' and status == 'paid' and payout == ARGV[3] then return {'ok', status, 1} end
if step == 'processing' and status ~= 'pending' then return {'err', 'withdrawal_state'} end
if step == 'processing' and ARGV[3] == '' then return {'err', 'invalid_field'} end
if step == 'paid' and (status ~= 'processing' or payout ~= ARGV[3]) then return {'err', 'withdrawal_state'} end
if step == 'paid' and (w[3] ~= ARGV[6] or w[4] ~= ARGV[7]) then return {'err', 'invalid_field'} end
if step == 'failed' and not ((status == 'pending' and ARGV[3] == '')
    or (status == 'processing' and payout == ARGV[3])) then
  return {'err', 'withdrawal_state'}
end

-- Checks done; from here on only writes.
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local n = tonumber(w[2])
local ref = 'withdrawal:' .. ARGV[1]
if step == 'processing' then
  redis.call('HSET', KEYS[1], 'status', 'processing', 'payout_id', ARGV[3], 'approved_by', ARGV[4],
    'approved_at', ts)
elseif step == 'paid' then
  local held = redis.call('HINCRBY', KEYS[2], 'diamonds_held', -n)
  redis.call('HSET', KEYS[1], 'status', 'paid', 'paid_at', ts)
  redis.call('XADD', KEYS[3], '*', 'kind', 'payout', 'unit', 'diamonds_held', 'delta', -n, 'balance', held,
    'ref', ref, 'payout', ARGV[3], 'cash', w[3], 'currency', w[4], 'rate_version', w[6], 'ts', ts)
else
  local held = redis.call('HINCRBY', KEYS[2], 'diamonds_held', -n)
  local diamonds = redis.call('HINCRBY', KEYS[2], 'diamonds', n)
  redis.call('HSET', KEYS[1], 'status', 'failed', 'failure', ARGV[5], 'failed_by', ARGV[4], 'failed_at', ts)
  redis.call('XADD', KEYS[3], '*', 'kind', 'withdrawal_release', 'unit', 'diamonds_held', 'delta', -n,
    'balance', held, 'ref', ref, 'reason', ARGV[5], 'ts', ts)
  redis.call('XADD', KEYS[3], '*', 'kind', 'withdrawal_release', 'unit', 'diamonds', 'delta', n,
    'balance', diamonds, 'ref', ref, 'reason', ARGV[5], 'ts', ts)
end
return {'ok', step, 0}
