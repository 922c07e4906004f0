-- gift_sender_side: the sender's half of a gift, in the sender's slot. A library: included (by
-- `--#include gift_sender_side`, see server/scripts.py) into send_gift (one node: both halves in one
-- script) and gift_debit (Redis Cluster: the sender's step). It defines functions only and never
-- reads KEYS or ARGV: the including script names the keys and the gift.
--
-- s (keys, all {u:SENDER}): s.wallet hash coins, gifts_sent; s.ledger stream; s.idem string
--   msgpack {fp, result} (result absent while a cluster gift is in flight); s.outbox hash
--   KEY -> msgpack gift in flight (cluster only; nil in send_gift)
-- g (the gift): sender, creator, gift_id, count, coins, diamonds, rate, fp, key
--
-- lookup_gift(s, g)       -> nil (key unseen) | {'err', 'idempotency_conflict'}
--                            | {'done', result} (result: the stored receipt array)
--                            | {'pending', entry} (entry: the msgpack outbox entry)
-- check_gift(s, g, status) -> nil, after turning g's amounts into numbers | {'err', code};
--                            status: the room's, as the including script read it
-- debit_sender(s, g)      -> balance, ref, ts. Writes only: call it after every check.

local MAX_AMOUNT = 1000000000000

local function amount(value, min)
  local n = tonumber(value)
  if n == nil or n ~= math.floor(n) or n < min or n > MAX_AMOUNT then return nil end
  return n
end

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

-- Amounts, room, balance: in this order, so an error names the first thing wrong.
local function check_gift(s, g, status)
  g.count, g.coins = amount(g.count, 1), amount(g.coins, 1)
  g.diamonds, g.rate = amount(g.diamonds, 0), amount(g.rate, 0)
  if not (g.count and g.coins and g.diamonds and g.rate) then return {'err', 'invalid_count'} end
  if status ~= 'open' then return {'err', 'room_closed'} end
  local balance = tonumber(redis.call('HGET', s.wallet, 'coins') or '0')
  if balance < g.coins then return {'err', 'insufficient_funds'} end
  return nil
end

-- The gift's ref names it on both ledgers, and (cluster) keys its credit: the sender's running
-- gift count makes it unique forever, even if an idempotency key is reused after its TTL.
local function debit_sender(s, g)
  local now = redis.call('TIME')
  local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local balance = redis.call('HINCRBY', s.wallet, 'coins', -g.coins)
  local ref = 'gift:' .. g.sender .. ':' .. redis.call('HINCRBY', s.wallet, 'gifts_sent', 1)
  redis.call('XADD', s.ledger, '*', 'kind', 'gift_sent', 'unit', 'coins', 'delta', -g.coins,
    'balance', balance, 'ref', ref, 'peer', g.creator, 'gift', g.gift_id, 'count', g.count,
    'rate_bp', g.rate, 'key', g.key, 'ts', ts)
  return balance, ref, ts
end
