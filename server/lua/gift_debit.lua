-- gift_debit: Redis Cluster, step 1 of a gift, in the SENDER's slot: debit the sender and record
-- the gift in the sender's outbox, atomically; the creator is credited by gift_credit (step 2)
-- and the outbox entry completed by gift_complete (step 3). Every check before the first write.
--
-- KEYS[1] wallet:{u:SENDER}        hash   coins, gifts_sent, locked
-- KEYS[2] ledger:{u:SENDER}        stream sender's ledger
-- KEYS[3] idem:{u:SENDER}:KEY      string msgpack {fp, result}; result set by gift_complete
-- KEYS[4] outbox:{u:SENDER}        hash   KEY -> msgpack gift whose credit is not confirmed
-- KEYS[5] limits:{u:SENDER}        hash   spending counters and self-set limits (lib_limits)
-- KEYS[6] rate:{u:SENDER}:gifts    string the sender's gift rate (GCRA theoretical arrival, us)
-- ARGV[1] sender id        ARGV[2] creator id      ARGV[3] gift id     ARGV[4] count
-- ARGV[5] coins (total)    ARGV[6] diamonds        ARGV[7] rate (bp)   ARGV[8] fingerprint
-- ARGV[9] idempotency TTL seconds   ARGV[10] idempotency key
-- ARGV[11] the room's status and ARGV[12] its live_id, as read just before (a pre-check: the
--          room is in another slot)
-- ARGV[13] deadline, ms since epoch: a debit later than this is refused (unavailable), so that
--          the recovery loop, which acts later still, never races a debit still on its way
-- ARGV[14] platform spending cap per day (coins)   ARGV[15] per week   ARGV[16] rate version
-- ARGV[17] gift rate: emission interval, us (0: no limit)   ARGV[18] gift rate: burst
-- ARGV[19] "1" if the gift is combo-able: carried in the outbox entry to gift_credit (streaks)
--
-- Returns {"debited", entry}: debited now; entry is the msgpack outbox entry {key, fp, ref,
--   sender, creator, gift_id, count, coins, diamonds, rate, rate_version, ts, live_id, balance,
--   combo};
-- {"pending", entry}: KEY was debited before and its credit is not confirmed yet;
-- {"done", {seq, coins, balance, diamonds, creator_diamonds, rate_bp, ts, live_id}}: KEY's gift
--   is complete (the stored receipt);
-- or {"err", code}: idempotency_conflict, invalid_count, room_closed, account_locked,
--   insufficient_funds, spending_limit, unavailable (deadline passed); or {"err", "rate_limited",
--   retry_after_ms}. An error changes nothing.

--#include lib_amount
--#include lib_limits
--#include gift_sender_side

local s = {wallet = KEYS[1], ledger = KEYS[2], idem = KEYS[3], outbox = KEYS[4], limits = KEYS[5],
  gift_rate = KEYS[6]}
local g = {
  sender = ARGV[1], creator = ARGV[2], gift_id = ARGV[3], count = ARGV[4], coins = ARGV[5],
  diamonds = ARGV[6], rate = ARGV[7], fp = ARGV[8], key = ARGV[10], day_cap = ARGV[14],
  week_cap = ARGV[15], rate_version = ARGV[16], gift_interval = ARGV[17], gift_burst = ARGV[18],
}

local seen = lookup_gift(s, g)
if seen then return seen end
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[13]) then
  return {'err', 'unavailable'}
end
local refused = check_gift(s, g, ARGV[11])
if refused then return refused end

-- Checks done; from here on only writes.
local balance, ref, ts = debit_sender(s, g)
local entry = cmsgpack.pack({
  key = g.key, fp = g.fp, ref = ref, sender = g.sender, creator = g.creator, gift_id = g.gift_id,
  count = g.count, coins = g.coins, diamonds = g.diamonds, rate = g.rate, rate_version = g.rate_version,
  ts = ts, live_id = ARGV[12], balance = balance, combo = ARGV[19],
})
redis.call('HSET', s.outbox, g.key, entry)
redis.call('SET', s.idem, cmsgpack.pack({fp = g.fp}), 'EX', ARGV[9])
return {'debited', entry}
