-- hook_update: record the outcome of a webhook delivery (new cursor, or the failure and when to
-- retry), only if this process still holds the hook's lease and the hook still exists; then
-- release the lease. A delivery that outlived its lease writes nothing: the process that took
-- the lease over delivers (again: deliveries are at least once) and records.
--
-- KEYS[1] hook:{u:CREATOR}:HOOK:lease string owner token of the delivery in progress
-- KEYS[2] hook:{u:CREATOR}:HOOK       hash   seq, live_diamonds, goal, attempts, next_at, ...
-- KEYS[3] hooks:{u:CREATOR}           hash   hook id -> config
-- ARGV[1] owner token   ARGV[2] hook id   ARGV[3..] field, value pairs to set in KEYS[2] (none:
-- only release the lease, e.g. when the process stops mid-delivery)
--
-- Returns 1 if recorded, 0 if the lease was lost or the hook deleted (nothing written).

if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
if #ARGV > 2 then redis.call('HSET', KEYS[2], unpack(ARGV, 3)) end
redis.call('DEL', KEYS[1])
return 1
