-- gift_creator_side: the creator's half of a gift, in the creator's slot: credit the creator,
-- count the gift in the live, record it in the room's history and publish it to the room. A
-- library: included (`--#include gift_creator_side`, see server/scripts.py) into send_gift (one
-- node: both halves in one script) and gift_credit (Redis Cluster: the creator's step). This is
-- the one place where a gift changes the creator's side; it defines functions only and never
-- reads KEYS or ARGV.
--
-- c (keys, all {u:CREATOR}): c.wallet hash diamonds; c.ledger stream; c.live hash status,
--   live_id, seq, epoch, coins, diamonds, gifts; c.top zset; c.history stream (id = SEQ-0)
-- g (the gift, amounts as numbers): sender, creator, gift_id, count, coins, diamonds, rate, ref,
--   ts (when it was paid), live_id (the live it was sent into), history_len, channel
--
-- credit_creator(c, g) -> seq, creator_diamonds. Writes only: the caller has checked everything.

local function credit_creator(c, g)
  local creator_diamonds = redis.call('HINCRBY', c.wallet, 'diamonds', g.diamonds)
  local live = redis.call('HMGET', c.live, 'live_id', 'epoch')
  local seq = redis.call('HINCRBY', c.live, 'seq', 1)
  -- On a cluster the live may have ended (or a new one begun) between debit and credit: the
  -- gift counts in the totals and ranking of the live it was sent into, and only there.
  if live[1] == g.live_id then
    redis.call('HINCRBY', c.live, 'coins', g.coins)
    redis.call('HINCRBY', c.live, 'diamonds', g.diamonds)
    redis.call('HINCRBY', c.live, 'gifts', g.count)
    redis.call('ZINCRBY', c.top, g.coins, g.sender)
  end
  redis.call('XADD', c.ledger, '*', 'kind', 'gift_received', 'unit', 'diamonds', 'delta', g.diamonds,
    'balance', creator_diamonds, 'ref', g.ref, 'peer', g.sender, 'gift', g.gift_id, 'count', g.count,
    'coins', g.coins, 'rate_bp', g.rate, 'ts', g.ts)

  local event = cmsgpack.pack({
    t = 'gift', room = g.creator, seq = seq, epoch = live[2], ts = g.ts, live_id = g.live_id,
    from = g.sender, gift_id = g.gift_id, count = g.count, coins = g.coins, diamonds = g.diamonds,
    creator_diamonds = creator_diamonds,
  })
  redis.call('XADD', c.history, 'MAXLEN', '~', g.history_len, seq .. '-0', 'e', event)
  redis.call('SPUBLISH', g.channel, event)
  return seq, creator_diamonds
end
