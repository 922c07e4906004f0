"""The peers: minimal but fair servers doing giftcast's job on the stacks people would otherwise
pick. Each joins a room, debits `server/lua/send_gift.lua` (same KEYS/ARGV as giftcast, key
names as in server/keys.py), and broadcasts the same event to the room through its Redis
adapter; the sender gets the receipt as the ack. Tokens are giftcast's (same HMAC secret).

- pysio/: python-socketio + AsyncRedisManager under uvicorn (uvloop, httptools).
- node/: Node socket.io 4 + @socket.io/redis-adapter on ioredis.
"""
