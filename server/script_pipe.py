"""ScriptPipe: the gift script's EVALSHA pipelined on one dedicated Redis connection.

Every gift runs `send_gift.lua` once. Through redis-py each call took a pooled connection,
packed its command, armed timeouts and a retry wrapper, and wrote alone: ~40% of the server's CPU
per gift, and Redis saw one command per read (benchmarks/RESULTS.md). The pipe keeps one
connection, packs each call in one pass, writes every call of a loop tick in one `write()`,
and matches replies to calls in order (Redis answers a connection's commands in order).

Contracts (the same as calling the script through redis-py, which the pipe replaces):

- `await pipe(keys, args)` returns the script's reply as redis-py would (bytes, ints, lists);
  an error reply raises `redis.exceptions.ResponseError`. NOSCRIPT (the server's script cache
  was emptied by a restart or failover) loads the script and runs the call again: NOSCRIPT is
  raised before a script runs, so nothing ran twice.
- A lost connection fails every call in flight with `redis.exceptions.ConnectionError` (the
  caller answers `unavailable`: the outcome is unknown and the client retries with the same
  idempotency key); the next call reconnects. A call unanswered for `timeout_s` aborts the
  connection the same way, like redis-py's socket timeout. Nothing is ever re-sent by the pipe.
- A cancelled caller's reply is read and dropped; the order of the others is kept.
- Plain `redis://` URLs only (host, port, user, password, db); `ScriptPipe.for_url` returns
  None for anything else (TLS, unix sockets), and the caller keeps redis-py's script.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

__all__ = ["ScriptPipe"]

_Waiter = tuple[asyncio.Future[Any], float]


def _bulk(value: Any) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def command(*parts: Any) -> bytes:
    """One RESP command: an array of bulk strings (str and int arguments as their text)."""
    return b"*%d\r\n" % len(parts) + b"".join(map(_bulk, parts))


class _Pipe(asyncio.Protocol):
    """One connection: writes batched per loop tick, replies matched to waiters in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._waiting: deque[_Waiter] = deque()
        self._chunks: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, data: bytes) -> asyncio.Future[Any]:
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("connection to Redis lost")
        future = self._loop.create_future()
        self._waiting.append((future, time.monotonic()))
        if not self._chunks:
            self._loop.call_soon(self._write)
        self._chunks.append(data)
        return future

    def _write(self) -> None:
        chunks, self._chunks = self._chunks, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(chunks))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future, _ = self._waiting.popleft()
            if not future.done():  # else its caller was cancelled: drop the reply
                future.set_result(reply)

    def oldest_age_s(self) -> float:
        return time.monotonic() - self._waiting[0][1] if self._waiting else 0.0

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}")
        self._chunks = []
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)


class ScriptPipe:
    """Callable like redis-py's AsyncScript: `await pipe(keys=[...], args=[...])`."""

    def __init__(self, host: str, port: int, source: str, *, username: str | None = None,
                 password: str | None = None, db: int = 0, timeout_s: float = 10.0,
                 client_name: str = "giftcast") -> None:
        self._host, self._port = host, port
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()
        self._setup = [command("CLIENT", "SETNAME", client_name)]
        if password is not None:
            self._setup.insert(0, command("AUTH", *((username,) if username else ()), password))
        if db:
            self._setup.append(command("SELECT", db))
        self._timeout_s = timeout_s
        self._pipe: _Pipe | None = None
        self._connecting: asyncio.Lock | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    def for_url(cls, url: str, source: str, **options: Any) -> ScriptPipe | None:
        """A pipe to the server of a plain `redis://` URL; None for any other kind of URL."""
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            return None
        db = parts.path.strip("/")
        return cls(parts.hostname, parts.port or 6379, source, username=unquote(parts.username or "") or None,
                   password=None if parts.password is None else unquote(parts.password),
                   db=int(db) if db else 0, **options)

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        data = command("EVALSHA", self._sha, len(keys), *keys, *args)
        reply = await (await self._connected()).request(data)
        if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
            pipe = await self._connected()
            await pipe.request(command("SCRIPT", "LOAD", self._source))
            reply = await pipe.request(data)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def _connected(self) -> _Pipe:
        pipe = self._pipe
        if pipe is not None and pipe.lost is None:
            return pipe
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._pipe is None or self._pipe.lost is not None:
                self._pipe = await self._connect()
            return self._pipe

    async def _connect(self) -> _Pipe:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout_s):
                _, pipe = await loop.create_connection(lambda: _Pipe(loop), self._host, self._port)
                for reply in await asyncio.gather(*(pipe.request(setup) for setup in self._setup)):
                    if isinstance(reply, ResponseError):
                        raise reply
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {self._host}:{self._port}: {exc!r}") from exc
        if self._watchdog is None:
            self._watchdog = loop.call_later(1.0, self._watch)
        return pipe

    def _watch(self) -> None:
        """Once a second: abort the connection if a call waited longer than timeout_s."""
        pipe = self._pipe
        if pipe is not None and pipe.transport is not None and pipe.oldest_age_s() > self._timeout_s:
            pipe.transport.abort()  # connection_lost fails the waiting calls
        self._watchdog = asyncio.get_running_loop().call_later(1.0, self._watch)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        pipe, self._pipe = self._pipe, None
        if pipe is not None and pipe.transport is not None:
            pipe.transport.close()
