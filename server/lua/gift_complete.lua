-- gift_complete: Redis Cluster, step 3 of a gift, in the SENDER's slot: the creator has been
-- credited (gift_credit answered), so drop the gift from the outbox and store its full receipt
-- under its idempotency key, where a retry finds it. Idempotent: a gift no longer in the outbox
-- changes nothing.
--
-- KEYS[1] outbox:{u:SENDER}        hash   KEY -> msgpack gift in flight
-- KEYS[2] idem:{u:SENDER}:KEY      string msgpack {fp, result}
-- ARGV[1] idempotency key   ARGV[2] seq   ARGV[3] creator_diamonds (both from gift_credit)
--
-- Returns 1 if this call completed the gift, 0 if it was already complete.

local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then return 0 end
local g = cmsgpack.unpack(stored)
local idem = redis.call('GET', KEYS[2])
if idem then  -- (absent if the record expired first: a retry then is a new gift, as on one node)
  local record = cmsgpack.unpack(idem)
  if not record.result then
    record.result = {tonumber(ARGV[2]), g.coins, g.balance, g.diamonds, tonumber(ARGV[3]), g.rate,
      g.ts, g.live_id}
    redis.call('SET', KEYS[2], cmsgpack.pack(record), 'KEEPTTL')
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
