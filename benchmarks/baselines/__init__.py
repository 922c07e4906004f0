"""Fan-out reference servers for scenario 2 (no Redis, no money): the floor and two baselines.

All three speak the subset of giftcast's protocol the load generator uses (docs/protocol.md):
WebSocket at /ws, msgpack frames, `join` → `joined` (snapshot with `seq`), `gift` → the room
event broadcast to every member, then `ack` with `receipt.seq`. The event has giftcast's shape
and size (`room_event`), so every server writes the same bytes per delivery.
"""
