"""giftcast demo client: HTTP calls with httpx, the WebSocket protocol (docs/protocol.md) in msgpack.

    python -m client_demo --url http://127.0.0.1:8000 [--token T | --dev-user bob --role viewer] COMMAND

stdout gets one JSON object per line (results, events, acks); `token` prints the bare token.
Diagnostics and errors go to stderr. Exit status: 0 on success, 1 on any error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol

SUBPROTOCOL = Subprotocol("giftcast.msgpack.v1")
EVENTS_PATH = "/v1/integrations/events"
REPLIES = frozenset({"joined", "left", "ack", "error", "pong"})
BUY_TIMEOUT_S = 15.0
UNAVAILABLE_RETRIES = 3


class ApiError(Exception):
    """An HTTP error reply (`{"error": {...}}`) or a WebSocket error frame."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("code", "error"))
        self.error = error


def emit(obj: Any) -> None:
    print(json.dumps(obj, separators=(",", ":"), ensure_ascii=False), flush=True)


def note(message: str) -> None:
    print(f"client_demo: {message}", file=sys.stderr, flush=True)


async def call(http: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = await http.request(method, path, json=body)
    try:
        data = response.json()
    except ValueError:
        data = {"error": {"code": "http_error", "message": response.text[:200]}}
    if response.is_error:
        raise ApiError({"status": response.status_code, **data.get("error", {})})
    return data


class WsClient:
    """One WebSocket: requests get their reply by `id`; room events go to `events` (None: closed)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        future = self._pending[request_id] = asyncio.get_running_loop().create_future()
        await self.ws.send(msgpack.packb({**frame, "id": request_id}))
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def join(self, room: str) -> dict[str, Any]:
        reply = await self.request({"t": "join", "room": room})
        if reply["t"] == "error":
            raise ApiError({k: reply[k] for k in ("code", "message")})
        return reply

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                frame = msgpack.unpackb(message) if isinstance(message, bytes) else json.loads(message)
                future = self._pending.get(frame.get("id")) if frame.get("t") in REPLIES else None
                if future is not None and not future.done():
                    future.set_result(frame)
                elif frame.get("id") is None:
                    self.events.put_nowait(frame)
        except ConnectionClosed:
            pass  # close code and reason stay on self.ws
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"connection closed ({self.ws.close_code})"))
            self.events.put_nowait(None)


def ws_url(url: str, path: str = "/ws") -> str:
    base = url.rstrip("/")
    return ("wss://" + base[8:] if base.startswith("https://") else "ws://" + base.removeprefix("http://")) + path


def ws_auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def buy(http: httpx.AsyncClient, bundle_id: str, method: str) -> dict[str, Any]:
    """Create an order, pay it in the sandbox, wait for the webhook to credit it."""
    order = await call(http, "POST", "/v1/orders", {"bundle_id": bundle_id, "method": method})
    await call(http, "POST", order["checkout_url"], {})
    async with asyncio.timeout(BUY_TIMEOUT_S):
        while (current := await call(http, "GET", f"/v1/orders/{order['id']}"))["status"] == "pending":
            await asyncio.sleep(0.1)
    if current["status"] != "paid":
        raise ApiError({"code": "payment_failed", "message": str(current.get("failure", current["status"]))})
    wallet = await call(http, "GET", "/v1/me/wallet")
    return {"order_id": order["id"], "status": "paid", "credited": order["coins"] + order["bonus_coins"],
            "coins": wallet["coins"]}


async def watch(client: WsClient, room: str, max_events: int | None) -> int:
    """Print the joined frame, then every new room event; resync on a gap or a new epoch."""
    joined = await client.join(room)
    emit(joined)
    seq, epoch, printed = joined["snapshot"]["seq"], joined["snapshot"]["epoch"], 0
    while max_events is None or printed < max_events:
        event = await client.events.get()  # events queued before `joined` come first: not lost
        if event is None:
            note(f"connection closed: {client.ws.close_code} {client.ws.close_reason or ''}")
            return 0 if client.ws.close_code == 1000 else 1
        if event.get("room") != room or "seq" not in event:
            continue
        if (epoch and event["epoch"] != epoch) or event["seq"] > seq + 1:
            note(f"missed events before seq {event['seq']}; joining again for a fresh snapshot")
            joined = await client.join(room)
            emit(joined)
            seq, epoch = joined["snapshot"]["seq"], joined["snapshot"]["epoch"]
            continue
        if event["seq"] <= seq:
            continue  # already counted in the snapshot
        seq, epoch = event["seq"], event["epoch"]
        emit(event)
        printed += 1
    return 0


async def events(ws: ClientConnection, max_events: int | None) -> int:
    """Print the integrators' event stream (docs/events.md): `ready`, then every room event."""
    printed = 0
    with contextlib.suppress(ConnectionClosed):  # its code and reason stay on ws
        async for message in ws:
            frame = msgpack.unpackb(message) if isinstance(message, bytes) else json.loads(message)
            emit(frame)
            printed += frame.get("t") != "ready"
            if max_events is not None and printed >= max_events:
                return 0
    note(f"connection closed: {ws.close_code} {ws.close_reason or ''}")
    return 0 if ws.close_code == 1000 else 1


async def gift(client: WsClient, room: str, gift_id: str, count: int, times: int, rate: float) -> int:
    """Send `times` gifts at `rate` per second, each with a fresh key; retry `unavailable` with it."""
    await client.join(room)
    receipts: list[dict[str, Any]] = []
    errors: dict[str, int] = {}

    async def send_one() -> None:
        frame = {"t": "gift", "room": room, "gift_id": gift_id, "count": count, "key": str(uuid.uuid4())}
        for attempt in range(UNAVAILABLE_RETRIES + 1):
            reply = await client.request(frame)  # a retry repeats the same key: never charged twice
            if reply["t"] != "error" or reply["code"] != "unavailable" or attempt == UNAVAILABLE_RETRIES:
                break
            await asyncio.sleep(0.2 * 2**attempt)
        emit(reply)
        if reply["t"] == "ack":
            receipts.append(reply["receipt"])
        else:
            errors[reply["code"]] = errors.get(reply["code"], 0) + 1

    loop = asyncio.get_running_loop()
    start, tasks = loop.time(), []
    for i in range(times):
        tasks.append(asyncio.create_task(send_one()))
        if rate > 0 and i + 1 < times:
            await asyncio.sleep(max(0.0, start + (i + 1) / rate - loop.time()))
    await asyncio.gather(*tasks)
    last = max(receipts, key=lambda r: r["seq"], default=None)
    emit({"summary": {
        "sent": times, "acked": len(receipts), "replays": sum(r["replay"] for r in receipts),
        "errors": errors, "coins_spent": sum(r["coins_spent"] for r in receipts),
        "balance": last["balance"] if last else None,
    }})
    return 0 if not errors else 1


async def run(args: argparse.Namespace) -> int:
    async with httpx.AsyncClient(base_url=args.url, timeout=10) as http:
        token = args.token
        if token is None:
            minted = await call(http, "POST", "/dev/tokens", {"user_id": args.dev_user, "role": args.role})
            token = minted["token"]
        if args.command == "token":
            print(token, flush=True)
            return 0
        http.headers["Authorization"] = f"Bearer {token}"
        if args.command == "wallet":
            emit(await call(http, "GET", "/v1/me/wallet"))
        elif args.command in ("open", "close"):
            emit(await call(http, "POST", f"/v1/live/{args.command}"))
        elif args.command == "goal":
            emit(await call(http, "POST", "/v1/live/goal", {"diamonds": args.diamonds}))
        elif args.command == "overlay":
            minted = await call(http, "POST", "/v1/live/overlay-token")
            emit({**minted, "overlay_url": args.url.rstrip("/") + minted["overlay_url"]})
        elif args.command == "buy":
            emit(await buy(http, args.bundle_id, args.method))
        elif args.command == "events":
            query = urlencode({name: value for name, value in (("room", args.room), ("since", args.since))
                               if value is not None})
            url = ws_url(args.url, EVENTS_PATH) + (f"?{query}" if query else "")
            async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=ws_auth(token)) as ws:
                return await events(ws, args.max_events)
        else:
            async with connect(ws_url(args.url), subprotocols=[SUBPROTOCOL], additional_headers=ws_auth(token)) as ws:
                client = WsClient(ws)
                if args.command == "watch":
                    return await watch(client, args.room, args.max_events)
                return await gift(client, args.room, args.gift_id, args.count, args.times, args.rate)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m client_demo", description="giftcast demo client")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--token", help="bearer token to use")
    who.add_argument("--dev-user", help="mint a dev token for this user id (POST /dev/tokens)")
    p.add_argument("--role", default="viewer", choices=("viewer", "creator", "admin", "overlay"),
                   help="role of the dev token (default: viewer)")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("token", help="mint a dev token and print it")
    commands.add_parser("wallet", help="print the wallet")
    b = commands.add_parser("buy", help="buy a bundle in the sandbox; print the new balance")
    b.add_argument("bundle_id")
    b.add_argument("--method", default="card", choices=("card", "paypal", "wallet"))
    commands.add_parser("open", help="open your live room (creator)")
    commands.add_parser("close", help="close your live room (creator)")
    goal = commands.add_parser("goal", help="set your live's diamond goal, 0 clears it (creator)")
    goal.add_argument("diamonds", type=int)
    commands.add_parser("overlay", help="mint a read-only overlay token; print the overlay URL for OBS (creator)")
    w = commands.add_parser("watch", help="join a room and print every event as a JSON line")
    w.add_argument("room")
    w.add_argument("--max-events", type=positive, help="exit after this many events")
    e = commands.add_parser("events", help="stream your room's events for integrators (creator or overlay token)")
    e.add_argument("--room", help="the room (default: the token's user)")
    e.add_argument("--since", type=int, help="the seq of the last event processed (default: from now)")
    e.add_argument("--max-events", type=positive, help="exit after this many events")
    g = commands.add_parser("gift", help="send gifts into a room; print each ack/error and a summary")
    g.add_argument("room")
    g.add_argument("gift_id")
    g.add_argument("--count", type=positive, default=1, help="gifts per frame (default 1)")
    g.add_argument("--times", type=positive, default=1, help="frames to send (default 1)")
    g.add_argument("--rate", type=float, default=10.0, help="frames per second; 0: no pacing (default 10)")
    return p


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.dev_user is None and (args.token is None or args.command == "token"):
        cli.error("give --dev-user (the token command mints a dev token), or --token")
    try:
        return asyncio.run(run(args))
    except ApiError as exc:
        print(json.dumps({"error": exc.error}), file=sys.stderr, flush=True)
    except (httpx.HTTPError, WebSocketException, OSError, TimeoutError) as exc:
        note(f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        return 130
    return 1
