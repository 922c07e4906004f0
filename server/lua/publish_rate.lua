-- publish_rate: an admin publishes a new rate version for a region, to take effect at a set
-- time. Moves no money (gifts and withdrawals record the version they used). Every check
-- happens before the first write.
--
-- KEYS[1] rates:published   hash   "<region>:latest" -> highest published version,
--                                  "<region>:from" -> its from (ms),
--                                  "<region>:v<version>" -> "<from>:<rate_bp>:<cash>:<published ms>:<admin>"
-- ARGV[1] region   ARGV[2] from (ms; "": as early as allowed)   ARGV[3] rate_bp
-- ARGV[4] cash per 1,000 diamonds
-- ARGV[5] admin id   ARGV[6] the catalog's highest version of the region
-- ARGV[7] its from (ms; "" when it has none: a first version)   ARGV[8] lead (ms)
--
-- The new version is one above the highest of the catalog's and the published ones, so two
-- admins publishing at once get two versions. It must take effect after that version and at
-- least ARGV[8] after now (Redis' clock): every process re-reads the published rates at least
-- that often (rate_store.py), so none can price a gift at the moment it takes effect with a copy
-- that lacks it.
--
-- Returns {"ok", version, from}, or {"err", "invalid_field"} (from too early or not after the
-- previous version's). An error changes nothing.

local region = ARGV[1]
local version, previous_from = tonumber(ARGV[6]), tonumber(ARGV[7])
local published = redis.call('HMGET', KEYS[1], region .. ':latest', region .. ':from')
if published[1] and tonumber(published[1]) > version then
  version, previous_from = tonumber(published[1]), tonumber(published[2])
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local from = tonumber(ARGV[2]) or math.max(now_ms + tonumber(ARGV[8]), (previous_from or 0) + 1)
if from < now_ms + tonumber(ARGV[8]) or (previous_from and from <= previous_from) then
  return {'err', 'invalid_field'}
end

-- Checks done; from here on only writes.
version = version + 1
redis.call('HSET', KEYS[1], region .. ':latest', version, region .. ':from', from,
  region .. ':v' .. version, from .. ':' .. ARGV[3] .. ':' .. ARGV[4] .. ':' .. now_ms .. ':' .. ARGV[5])
return {'ok', version, from}
