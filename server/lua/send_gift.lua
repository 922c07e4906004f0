-- send_gift: debit a viewer's coins, credit the creator's diamonds, record and publish the gift,
-- on ONE Redis node (not Redis Cluster: the keys span two users' slots). One atomic script made
-- of the two halves that Redis Cluster runs as separate steps (gift_debit, gift_credit); every
-- check happens before the first write.
--
-- KEYS[1] wallet:{u:SENDER}        hash   coins, gifts_sent, locked
-- KEYS[2] ledger:{u:SENDER}        stream sender's ledger
-- KEYS[3] idem:{u:SENDER}:KEY      string msgpack {fp, result} of this gift
-- KEYS[4] wallet:{u:CREATOR}       hash   diamonds
-- KEYS[5] ledger:{u:CREATOR}       stream creator's ledger
-- KEYS[6] live:{u:CREATOR}         hash   status, live_id, seq, epoch, coins, diamonds, gifts
-- KEYS[7] live:{u:CREATOR}:top     zset   top gifters of the current live, by coins
-- KEYS[8] live:{u:CREATOR}:history stream recent room events (id = SEQ-0)
-- KEYS[9] limits:{u:SENDER}        hash   spending counters and self-set limits (lib_limits)
-- KEYS[10] rate:{u:SENDER}:gifts           string sender's gift rate (GCRA theoretical arrival, us)
-- KEYS[11] live:{u:CREATOR}:streaks        hash   streak ID -> msgpack state; SENDER|GIFT -> ID
-- KEYS[12] live:{u:CREATOR}:streak_ends    zset   open streak ids by deadline (ms)
-- KEYS[13] top:{u:CREATOR}:week:YYYY-Www   zset   creator's top gifters this ISO week, by coins
-- KEYS[14] top:{u:CREATOR}:all             zset   creator's all-time top gifters, by coins
-- ARGV[1] sender id        ARGV[2] creator id      ARGV[3] gift id     ARGV[4] count
-- ARGV[5] coins (total)    ARGV[6] diamonds        ARGV[7] rate (bp)   ARGV[8] fingerprint
-- ARGV[9] idempotency TTL seconds   ARGV[10] history max length   ARGV[11] room channel
-- ARGV[12] idempotency key
-- ARGV[13] platform spending cap per day (coins)   ARGV[14] per week   ARGV[15] rate version
-- ARGV[16] gift rate: emission interval, us (0: no limit)   ARGV[17] gift rate: burst
-- ARGV[18] "1" if the gift is combo-able (streaks)           ARGV[19] streak window, ms
-- ARGV[20] weekly leaderboard TTL, seconds
--
-- Returns {"ok", seq, coins, balance, diamonds, creator_diamonds, rate_bp, ts, live_id, replay}
-- where replay is 0 for a new gift and 1 when KEY was seen before with the same fingerprint;
-- or {"err", code} with code one of: idempotency_conflict, invalid_count, room_closed,
-- account_locked, insufficient_funds, spending_limit; or {"err", "rate_limited", retry_after_ms}.
-- An error changes nothing. A replay changes nothing either: it is not rate-limited and does not
-- extend a streak.

--#include lib_amount
--#include lib_limits
--#include gift_sender_side
--#include gift_creator_side

local s = {wallet = KEYS[1], ledger = KEYS[2], idem = KEYS[3], limits = KEYS[9], gift_rate = KEYS[10]}
local c = {wallet = KEYS[4], ledger = KEYS[5], live = KEYS[6], top = KEYS[7], history = KEYS[8],
  streaks = KEYS[11], streak_ends = KEYS[12], top_week = KEYS[13], top_all = KEYS[14]}
local g = {
  sender = ARGV[1], creator = ARGV[2], gift_id = ARGV[3], count = ARGV[4], coins = ARGV[5],
  diamonds = ARGV[6], rate = ARGV[7], fp = ARGV[8], history_len = ARGV[10], channel = ARGV[11],
  key = ARGV[12], day_cap = ARGV[13], week_cap = ARGV[14], rate_version = ARGV[15],
  gift_interval = ARGV[16], gift_burst = ARGV[17], combo = ARGV[18], streak_window = ARGV[19],
  week_ttl = ARGV[20],
}

local seen = lookup_gift(s, g)
if seen then
  if seen[1] == 'err' then return seen end
  local r = seen[2]
  return {'ok', r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], 1}
end
local room = redis.call('HMGET', c.live, 'status', 'live_id')
local refused = check_gift(s, g, room[1])
if refused then return refused end

-- Checks done; from here on only writes.
local balance, ref, ts = debit_sender(s, g)
g.ref, g.ts, g.live_id = ref, ts, room[2]
local seq, creator_diamonds = credit_creator(c, g)
local result = {seq, g.coins, balance, g.diamonds, creator_diamonds, g.rate, ts, g.live_id}
redis.call('SET', KEYS[3], cmsgpack.pack({fp = g.fp, result = result}), 'EX', ARGV[9])
return {'ok', seq, g.coins, balance, g.diamonds, creator_diamonds, g.rate, ts, g.live_id, 0}
