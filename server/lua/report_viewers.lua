-- report_viewers: one process reports its viewer count for a room; returns the room's total.
-- Moves no money. Each process owns one field; a field whose process stopped reporting (it
-- died) expires at its deadline, so a dead process's viewers vanish within one TTL.
--
-- KEYS[1] viewers:{u:CREATOR}  hash  process id -> "count:deadline_ms"
-- ARGV[1] process id   ARGV[2] this process's viewer count (>= 0; 0 removes its field;
--         -1 only reads: a process asking about a room it has no viewers in)
-- ARGV[3] TTL in ms of this report (and of the whole hash, so an abandoned room vanishes)
--
-- Returns the sum of the unexpired counts, this report included.
-- Reads come first; the writes (pruning expired fields, this report) follow.

local count = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if not count or count < -1 or not ttl or ttl < 1 then return redis.error_reply('bad viewer report') end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)

local total = math.max(count, 0)
local expired = {}
local fields = redis.call('HGETALL', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] or count < 0 then
    local n, deadline = string.match(fields[i + 1], '^(%d+):(%d+)$')
    if n and tonumber(deadline) > now_ms then
      total = total + tonumber(n)
    else
      expired[#expired + 1] = fields[i]
    end
  end
end

-- Reads done; from here on only writes.
if #expired > 0 then redis.call('HDEL', KEYS[1], unpack(expired)) end
if count > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], count .. ':' .. (now_ms + ttl))
  -- Never shorten the hash's life below another process's longer deadline.
  if pttl < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
elseif count == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return total
