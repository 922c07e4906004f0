-- gift_sender_side: the sender's half of a gift, in the sender's slot. A library: included (by
-- `--#include gift_sender_side`, see server/scripts.py) into send_gift (one node: both halves in one
-- script) and gift_debit (Redis Cluster: the sender's step), after lib_amount and lib_limits. It
-- defines functions only and never reads KEYS or ARGV: the including script names the keys and
-- the gift.
--
-- s (keys, all {u:SENDER}): s.wallet hash coins, gifts_sent, locked; s.ledger stream; s.idem
--   string msgpack {fp, result} (result absent while a cluster gift is in flight); s.outbox hash
--   KEY -> msgpack gift in flight (cluster only; nil in send_gift); s.limits hash spending
--   counters and self-set limits (lib_limits); s.gift_rate string the sender's gift rate (GCRA
--   theoretical arrival time, us)
-- g (the gift): sender, creator, gift_id, count, coins, diamonds, rate, rate_version, fp, key,
--   day_cap, week_cap (the platform's spending caps, coins); gift_interval (gift rate: emission
--   interval in us, "0": no limit) and gift_burst
--
-- lookup_gift(s, g)       -> nil (key unseen) | {'err', 'idempotency_conflict'}
--                            | {'done', result} (result: the stored receipt array)
--                            | {'pending', entry} (entry: the msgpack outbox entry)
-- check_gift(s, g, status) -> nil, after turning g's amounts into numbers | {'err', code}
--                            | {'err', 'rate_limited', retry_after_ms};
--                            status: the room's, as the including script read it
-- debit_sender(s, g)      -> balance, ref, ts. Writes only: call it after every check.

local function lookup_gift(s, g)
  local stored = redis.call('GET', s.idem)
  if stored then
    local record = cmsgpack.unpack(stored)
    if record.fp ~= g.fp then return {'err', 'idempotency_conflict'} end
    if record.result then return {'done', record.result} end
  end
  if s.outbox then
    local entry = redis.call('HGET', s.outbox, g.key)
    if entry then
      if cmsgpack.unpack(entry).fp ~= g.fp then return {'err', 'idempotency_conflict'} end
      return {'pending', entry}
    end
  end
  return nil
end

-- Gift rate (issue 4): GCRA on Redis's clock, so every process shares one limit per sender. Only
-- reads: the new theoretical arrival time is written by debit_sender, so a refused gift (for any
-- reason) uses none of the sender's rate.
local function check_gift_rate(s, g)
  local interval = tonumber(g.gift_interval)
  if interval <= 0 then return nil end
  local clock = redis.call('TIME')
  local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  g.gift_tat = math.max(tonumber(redis.call('GET', s.gift_rate) or '0'), now_us) + interval
  g.gift_tat_ttl_ms = math.ceil((g.gift_tat - now_us) / 1000)
  local early_us = g.gift_tat - now_us - interval * tonumber(g.gift_burst)
  if early_us > 0 then return {'err', 'rate_limited', math.ceil(early_us / 1000)} end
  return nil
end

-- Amounts, gift rate, room, then (lib_limits) account lock, balance, spending caps and self-set
-- limits: in this order, so an error names the first thing wrong.
local function check_gift(s, g, status)
  g.count, g.coins = amount(g.count, 1), amount(g.coins, 1)
  g.diamonds, g.rate = amount(g.diamonds, 0), amount(g.rate, 0)
  if not (g.count and g.coins and g.diamonds and g.rate) then return {'err', 'invalid_count'} end
  local limited = check_gift_rate(s, g)
  if limited then return limited end
  if status ~= 'open' then return {'err', 'room_closed'} end
  local refusal, count_spending = check_spending(s.wallet, s.limits, g.coins, g.day_cap, g.week_cap)
  if refusal then return {'err', refusal} end
  g.count_spending = count_spending
  return nil
end

-- The gift's ref names it on both ledgers, and (cluster) keys its credit: the sender's running
-- gift count makes it unique forever, even if an idempotency key is reused after its TTL.
local function debit_sender(s, g)
  g.count_spending()
  local now = redis.call('TIME')
  local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local balance = redis.call('HINCRBY', s.wallet, 'coins', -g.coins)
  if g.gift_tat then redis.call('SET', s.gift_rate, g.gift_tat, 'PX', g.gift_tat_ttl_ms) end
  local ref = 'gift:' .. g.sender .. ':' .. redis.call('HINCRBY', s.wallet, 'gifts_sent', 1)
  redis.call('XADD', s.ledger, '*', 'kind', 'gift_sent', 'unit', 'coins', 'delta', -g.coins,
    'balance', balance, 'ref', ref, 'peer', g.creator, 'gift', g.gift_id, 'count', g.count,
    'rate_bp', g.rate, 'rate_version', g.rate_version, 'key', g.key, 'ts', ts)
  return balance, ref, ts
end
