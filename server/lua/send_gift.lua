-- send_gift: debit a viewer's coins, credit the creator's diamonds, record and publish the gift.
-- One atomic script; every check happens before the first write.
--
-- KEYS[1] wallet:{u:SENDER}        hash   coins
-- KEYS[2] ledger:{u:SENDER}        stream sender's ledger
-- KEYS[3] idem:{u:SENDER}:KEY      string msgpack {fp, result} of this gift
-- KEYS[4] wallet:{u:CREATOR}       hash   diamonds
-- KEYS[5] ledger:{u:CREATOR}       stream creator's ledger
-- KEYS[6] live:{u:CREATOR}         hash   status, live_id, seq, epoch, coins, diamonds, gifts
-- KEYS[7] live:{u:CREATOR}:top     zset   top gifters of the current live, by coins
-- KEYS[8] live:{u:CREATOR}:history stream recent room events (id = SEQ-0)
-- KEYS[9] limits:{u:SENDER}        hash   spending counters and self-set limits (lib_limits)
-- ARGV[1] sender id        ARGV[2] creator id      ARGV[3] gift id     ARGV[4] count
-- ARGV[5] coins (total)    ARGV[6] diamonds        ARGV[7] rate (bp)   ARGV[8] fingerprint
-- ARGV[9] idempotency TTL seconds   ARGV[10] history max length   ARGV[11] room channel
-- ARGV[12] idempotency key
-- ARGV[13] platform spending cap per day (coins)   ARGV[14] per week   ARGV[15] rate version
--
-- Returns {"ok", seq, coins, balance, diamonds, creator_diamonds, rate_bp, ts_ms, live_id, replay}
-- where replay is 0 for a new gift and 1 when KEY was seen before with the same fingerprint;
-- or {"err", code} with code one of: idempotency_conflict, invalid_count, room_closed,
-- account_locked, insufficient_funds, spending_limit. An error changes nothing.

local MAX = 1000000000000

local function amount(value, min)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < min or n > MAX then return nil end
  return n
end

local stored = redis.call('GET', KEYS[3])
if stored then
  local record = cmsgpack.unpack(stored)
  if record.fp ~= ARGV[8] then return {'err', 'idempotency_conflict'} end
  local r = record.result
  return {'ok', r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], 1}
end

local count = amount(ARGV[4], 1)
local coins = amount(ARGV[5], 1)
local diamonds = amount(ARGV[6], 0)
local rate = amount(ARGV[7], 0)
if not (count and coins and diamonds and rate) then return {'err', 'invalid_count'} end

local live = redis.call('HMGET', KEYS[6], 'status', 'live_id', 'epoch')
if live[1] ~= 'open' then return {'err', 'room_closed'} end

-- Viewer side (economy): account lock, balance, spending caps and self-set limits. Keep this
-- block the LAST check: once it passes it counts the coins against the sender's day and week.
--@include lib_limits
local refusal, count_spending = check_spending(KEYS[1], KEYS[9], coins, ARGV[13], ARGV[14])
if refusal then return {'err', refusal} end
count_spending()

-- Checks done; from here on only writes.
local now = redis.call('TIME')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local live_id = live[2]

local new_balance = redis.call('HINCRBY', KEYS[1], 'coins', -coins)
local creator_diamonds = redis.call('HINCRBY', KEYS[4], 'diamonds', diamonds)
local seq = redis.call('HINCRBY', KEYS[6], 'seq', 1)
redis.call('HINCRBY', KEYS[6], 'coins', coins)
redis.call('HINCRBY', KEYS[6], 'diamonds', diamonds)
redis.call('HINCRBY', KEYS[6], 'gifts', count)
redis.call('ZINCRBY', KEYS[7], coins, ARGV[1])

local ref = 'gift:' .. ARGV[2] .. ':' .. live_id .. ':' .. seq
redis.call('XADD', KEYS[2], '*', 'kind', 'gift_sent', 'unit', 'coins', 'delta', -coins,
  'balance', new_balance, 'ref', ref, 'peer', ARGV[2], 'gift', ARGV[3], 'count', count,
  'rate_bp', rate, 'rate_version', ARGV[15], 'key', ARGV[12], 'ts', ts)
redis.call('XADD', KEYS[5], '*', 'kind', 'gift_received', 'unit', 'diamonds', 'delta', diamonds,
  'balance', creator_diamonds, 'ref', ref, 'peer', ARGV[1], 'gift', ARGV[3], 'count', count,
  'coins', coins, 'rate_bp', rate, 'rate_version', ARGV[15], 'ts', ts)

local event = cmsgpack.pack({
  t = 'gift', room = ARGV[2], seq = seq, epoch = live[3], ts = ts, live_id = live_id,
  from = ARGV[1], gift_id = ARGV[3], count = count, coins = coins, diamonds = diamonds,
  creator_diamonds = creator_diamonds,
})
redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[10], seq .. '-0', 'e', event)
redis.call('PUBLISH', ARGV[11], event)

local result = {seq, coins, new_balance, diamonds, creator_diamonds, rate, ts, live_id}
redis.call('SET', KEYS[3], cmsgpack.pack({fp = ARGV[8], result = result}), 'EX', ARGV[9])
return {'ok', seq, coins, new_balance, diamonds, creator_diamonds, rate, ts, live_id, 0}
