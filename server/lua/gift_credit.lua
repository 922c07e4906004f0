-- gift_credit: Redis Cluster, step 2 of a gift, in the CREATOR's slot: credit the creator, count
-- the gift in its live, append it to the room's history and SPUBLISH it, exactly once per gift:
-- the gift's ref keys a marker, so running this again for the same gift changes nothing and
-- answers what the first run did. The debit (step 1) checked the gift; the only check here is
-- its age ("stale" below).
--
-- KEYS[1] wallet:{u:CREATOR}            hash   diamonds
-- KEYS[2] ledger:{u:CREATOR}            stream creator's ledger
-- KEYS[3] live:{u:CREATOR}              hash   live_id, seq, epoch, coins, diamonds, gifts
-- KEYS[4] live:{u:CREATOR}:top          zset   top gifters of the current live, by coins
-- KEYS[5] live:{u:CREATOR}:history      stream recent room events (id = SEQ-0)
-- KEYS[6] credited:{u:CREATOR}:REF      string msgpack {seq, creator_diamonds}: the marker
-- KEYS[7] live:{u:CREATOR}:streaks      hash   streak ID -> msgpack state; SENDER|GIFT -> ID
-- KEYS[8] live:{u:CREATOR}:streak_ends  zset   open streak ids by deadline (ms)
-- KEYS[9] top:{u:CREATOR}:week:YYYY-Www zset   creator's top gifters of the gift's ISO week
-- KEYS[10] top:{u:CREATOR}:all          zset   creator's all-time top gifters
-- ARGV[1] the gift: the msgpack outbox entry gift_debit wrote
-- ARGV[2] history max length   ARGV[3] room channel   ARGV[4] marker TTL seconds
-- ARGV[5] streak window, ms    ARGV[6] weekly leaderboard TTL, seconds
--
-- Returns {"credited", seq, creator_diamonds} the first time, {"done", seq, creator_diamonds}
-- after that, or {"stale"} (nothing changed) for a gift debited more than TTL - 1 h ago whose
-- marker may have expired: only an operator can tell whether it was credited.

--#include gift_creator_side

local marker = redis.call('GET', KEYS[6])
if marker then
  local first = cmsgpack.unpack(marker)
  return {'done', first[1], first[2]}
end

local g = cmsgpack.unpack(ARGV[1])
local now = redis.call('TIME')
if tonumber(now[1]) * 1000 - g.ts > (tonumber(ARGV[4]) - 3600) * 1000 then return {'stale'} end
g.history_len, g.channel, g.streak_window, g.week_ttl = ARGV[2], ARGV[3], ARGV[5], ARGV[6]
local c = {wallet = KEYS[1], ledger = KEYS[2], live = KEYS[3], top = KEYS[4], history = KEYS[5],
  streaks = KEYS[7], streak_ends = KEYS[8], top_week = KEYS[9], top_all = KEYS[10]}
local seq, creator_diamonds = credit_creator(c, g)
redis.call('SET', KEYS[6], cmsgpack.pack({seq, creator_diamonds}), 'EX', ARGV[4])
return {'credited', seq, creator_diamonds}
