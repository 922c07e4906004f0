"""Every Redis key and channel name giftcast uses, in one place.

Keys carry a hash tag naming the user they belong to, `{u:<user_id>}`, so that on Redis
Cluster every key a script touches for one user lands in one slot. A creator's live room is
tagged with the creator's own tag: the room's totals, ranking, history and channel live in the
same slot as the creator's diamond balance, so crediting a gift to a creator and publishing it
to the room is one single-slot script. Orders are tagged with their buyer.

    wallet:{u:ID}                 hash   coins, diamonds, diamonds_held (balances); gifts_sent
                                         (count, for refs); first_recharge; locked (why, if so)
    ledger:{u:ID}                 stream one entry per balance movement (never trimmed)
    idem:{u:ID}:KEY               string msgpack {fp, result} of a gift, TTL >= 24 h
    outbox:{u:ID}                 hash   KEY -> a gift debited whose credit is unconfirmed (cluster)
    credited:{u:ID}:REF           string marker: gift REF was credited to creator ID (cluster)
    inflight:{g:N}                zset   "SENDER KEY ATTEMPT" -> due ms: cross-slot gifts under
                                         way, N in 0..GIFT_PARTITIONS-1 (cluster; recovery's index)
    order:{u:ID}:ORDER            hash   a recharge order and its state
    orders:{u:ID}                 zset   the user's order ids by creation time
    live:{u:ID}                   hash   room state: status, live_id, seq, epoch, totals, goal
    live:{u:ID}:top               zset   top gifters of the current live, by coins
    live:{u:ID}:history           stream the room's recent events, for resume
    viewers:{u:ID}                hash   process id -> "count:deadline_ms", the room's viewers
    room:{u:ID}                   channel the room's events (sharded pub/sub: SPUBLISH, SSUBSCRIBE)
    profile:{u:ID}                hash   region, birth_date, account_type
    limits:{u:ID}                 hash   self-set spending limits, day/week spending and
                                         withdrawal counters
    op:{u:ID}:KIND:KEY            string msgpack {fp, result} of a purchase or admin grant, TTL
    inventory:{u:ID}              hash   good id -> count owned
    withdrawal:{u:ID}:WID         hash   a withdrawal request and its state
    withdrawals:{u:ID}            zset   the creator's withdrawal ids by creation time
    review:withdrawals            zset   withdrawals awaiting an admin, by creation time (an index
                                         written after the script, not money: see withdrawal_store)
    live:{u:ID}:streaks           hash   open combo streaks: ID -> msgpack state, SENDER|GIFT -> ID
    live:{u:ID}:streak_ends       zset   open streak ids by deadline (ms since epoch)
    top:{u:ID}:week:YYYY-Www      zset   the creator's top gifters of an ISO week, by coins (expires)
    top:{u:ID}:all                zset   the creator's all-time top gifters, by coins
    rate:{u:ID}:gifts             string the sender's gift-rate state (GCRA: theoretical arrival, us)
    hooks:{u:ID}                  hash   the creator's webhooks: hook id -> JSON config
    hook:{u:ID}:HOOK              hash   a webhook's delivery state (cursor = last seq delivered)
    hook:{u:ID}:HOOK:lease        string which process is delivering it now (expires)
    hooks:creators                set    creators with webhooks (no tag: read on its own)
    giftcast:durability           channel nobody listens; a replicated no-op before WAITAOF
                                         (server/durable.py, GIFTCAST_REDIS_WAIT_REPLICAS)
    locked:accounts               zset   user id -> ms locked: accounts a reversed payment left
                                         negative, for admins (an index written after the script:
                                         see locked_accounts)
    rates:published               hash   rate versions admins published at run time (not money:
                                         see rate_store, publish_rate.lua)
"""

from __future__ import annotations

import zlib

# The in-flight index is spread over this many keys (so over the cluster's nodes); fixed forever,
# since every process must scan the same partitions.
GIFT_PARTITIONS = 16


def tag(user_id: str) -> str:
    return "{u:" + user_id + "}"


def wallet(user_id: str) -> str:
    return "wallet:" + tag(user_id)


def ledger(user_id: str) -> str:
    return "ledger:" + tag(user_id)


def idempotency(user_id: str, key: str) -> str:
    return "idem:" + tag(user_id) + ":" + key


def outbox(user_id: str) -> str:
    return "outbox:" + tag(user_id)


def credited(creator_id: str, ref: str) -> str:
    return "credited:" + tag(creator_id) + ":" + ref


def gifts_in_flight(partition: int) -> str:
    return "inflight:{g:" + str(partition) + "}"


def gift_partition(sender_id: str) -> int:
    """The `gifts_in_flight` partition a sender's gifts are indexed in."""
    return zlib.crc32(sender_id.encode()) % GIFT_PARTITIONS


def order(user_id: str, order_id: str) -> str:
    return "order:" + tag(user_id) + ":" + order_id


def orders(user_id: str) -> str:
    return "orders:" + tag(user_id)


def live(creator_id: str) -> str:
    return "live:" + tag(creator_id)


def live_top(creator_id: str) -> str:
    return "live:" + tag(creator_id) + ":top"


def live_history(creator_id: str) -> str:
    return "live:" + tag(creator_id) + ":history"


def room_viewers(creator_id: str) -> str:
    return "viewers:" + tag(creator_id)


def live_streaks(creator_id: str) -> str:
    return "live:" + tag(creator_id) + ":streaks"


def live_streak_ends(creator_id: str) -> str:
    return "live:" + tag(creator_id) + ":streak_ends"


def top_week(creator_id: str, week: str) -> str:
    """`week` is an ISO week label, e.g. "2025-W07" (`leaderboards.iso_week`)."""
    return "top:" + tag(creator_id) + ":week:" + week


def top_all(creator_id: str) -> str:
    return "top:" + tag(creator_id) + ":all"


def gift_rate(user_id: str) -> str:
    return "rate:" + tag(user_id) + ":gifts"


def room_channel(creator_id: str) -> str:
    return "room:" + tag(creator_id)


def room_of_channel(channel: str) -> str:
    """Inverse of `room_channel`: the creator id a room channel belongs to."""
    return channel[len("room:{u:") : -1]


def profile(user_id: str) -> str:
    return "profile:" + tag(user_id)


def limits(user_id: str) -> str:
    return "limits:" + tag(user_id)


def operation(user_id: str, kind: str, key: str) -> str:
    """The idempotency record of a purchase or an admin grant (`kind` keeps the spaces apart)."""
    return "op:" + tag(user_id) + ":" + kind + ":" + key


def inventory(user_id: str) -> str:
    return "inventory:" + tag(user_id)


def withdrawal(user_id: str, withdrawal_id: str) -> str:
    return "withdrawal:" + tag(user_id) + ":" + withdrawal_id


def withdrawals(user_id: str) -> str:
    return "withdrawals:" + tag(user_id)


WITHDRAWAL_REVIEW = "review:withdrawals"
LOCKED_ACCOUNTS = "locked:accounts"
PUBLISHED_RATES = "rates:published"
HOOK_CREATORS = "hooks:creators"


def hooks(creator_id: str) -> str:
    return "hooks:" + tag(creator_id)


def hook_state(creator_id: str, hook_id: str) -> str:
    return "hook:" + tag(creator_id) + ":" + hook_id


def hook_lease(creator_id: str, hook_id: str) -> str:
    return "hook:" + tag(creator_id) + ":" + hook_id + ":lease"


DURABILITY_CHANNEL = "giftcast:durability"
