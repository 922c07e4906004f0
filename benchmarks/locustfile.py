"""Locust load test for giftcast: WebSocket viewers that gift, and HTTP buyers.

Against a running server with GIFTCAST_DEV_TOKENS=1 and GIFTCAST_SANDBOX_PAYMENTS=1 (as `make
run` starts it), headless, one command:

    .venv/bin/locust -f benchmarks/locustfile.py --headless -u 50 -r 10 -t 60s \\
        --host http://127.0.0.1:8000 --csv benchmarks/results/locust/locust

(`python -m benchmarks locust` starts a server and does exactly this, then puts the numbers in
results.md.) Environment: LOCUST_ROOM (the creator whose live the viewers join; default
"locuststar", opened at test start), LOCUST_GIFTS_PER_S (per viewer, default 0.5).

Users:
- `Viewer` (weight 4): mints a dev token, buys coins through the sandbox, opens a WebSocket
  (JSON subprotocol), joins the room, then gifts at LOCUST_GIFTS_PER_S. A reader greenlet
  receives everything: each ack is reported as "ws gift ack", each of the viewer's own gift
  events coming back through the room as "ws gift echo" (sent → seen in the room); a gift whose
  event has not come back within 10 s is a failure ("ws gift echo" lost).
- `Buyer` (weight 1): a recharge through the sandbox, POST /v1/orders then POST
  /sandbox/checkout/{id}, then polls the order until the webhook has marked it paid ("order
  paid", time from checkout to paid).
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from typing import Any

import gevent
import websocket
from locust import HttpUser, User, between, constant_pacing, events, task

ROOM = os.environ.get("LOCUST_ROOM", "locuststar")
GIFTS_PER_S = float(os.environ.get("LOCUST_GIFTS_PER_S", "0.5"))
ECHO_TIMEOUT_S = 10.0
_ids = itertools.count(1)


def _token(client: Any, user: str, role: str = "viewer") -> str:
    reply = client.post("/dev/tokens", json={"user_id": user, "role": role}, name="/dev/tokens")
    reply.raise_for_status()
    return reply.json()["token"]


def _buy(client: Any, token: str, bundle: str = "coins_70") -> float:
    """Order + sandbox checkout; returns seconds from checkout until the order is paid."""
    auth = {"authorization": f"Bearer {token}"}
    order = client.post("/v1/orders", json={"bundle_id": bundle}, headers=auth, name="/v1/orders")
    order.raise_for_status()
    order_id = order.json()["id"]
    started = time.monotonic()
    client.post(f"/sandbox/checkout/{order_id}", headers=auth, name="/sandbox/checkout/[id]").raise_for_status()
    while time.monotonic() - started < 30:
        state = client.get(f"/v1/orders/{order_id}", headers=auth, name="/v1/orders/[id]").json()["status"]
        if state == "paid":
            return time.monotonic() - started
        gevent.sleep(0.05)
    raise TimeoutError(f"order {order_id} not paid within 30 s")


@events.test_start.add_listener
def open_room(environment: Any, **_: Any) -> None:
    import httpx

    with httpx.Client(base_url=environment.host, timeout=30) as client:
        reply = client.post("/dev/tokens", json={"user_id": ROOM, "role": "creator"})
        reply.raise_for_status()
        auth = {"authorization": f"Bearer {reply.json()['token']}"}
        client.post("/v1/live/open", headers=auth).raise_for_status()


def _report(environment: Any, name: str, started: float, exc: Exception | None = None, length: int = 0) -> None:
    environment.events.request.fire(request_type="WS", name=name, response_time=(time.monotonic() - started) * 1000,
                                    response_length=length, exception=exc, context={})


class Viewer(User):
    weight = 4
    wait_time = constant_pacing(1 / GIFTS_PER_S)

    def on_start(self) -> None:
        from locust.clients import HttpSession

        self.user_id = f"lv-{uuid.uuid4().hex[:12]}"
        self.http = HttpSession(self.host, self.environment.events.request, self)
        self.token = _token(self.http, self.user_id)
        _buy(self.http, self.token, "coins_350")
        ws_url = self.host.replace("http", "ws", 1) + "/ws"
        started = time.monotonic()
        self.ws = websocket.create_connection(ws_url, header=[f"Authorization: Bearer {self.token}"],
                                              subprotocols=["giftcast.json.v1"], timeout=30)
        self.pending: dict[int, float] = {}  # request id → sent at, until the ack arrives
        self.echo_wait: dict[int, float] = {}  # seq of an acked gift → sent at, until its event is seen
        self.seen_own: set[int] = set()  # own gift events that arrived before their ack
        self.ws.send(json.dumps({"t": "join", "id": 0, "room": ROOM}))
        joined = json.loads(self.ws.recv())
        while joined.get("t") != "joined":  # room events may precede the reply
            joined = json.loads(self.ws.recv())
        _report(self.environment, "ws connect+join", started)
        self.reader = gevent.spawn(self._read)

    def on_stop(self) -> None:
        self.reader.kill()
        self.ws.close()

    @task
    def gift(self) -> None:
        request_id = next(_ids)
        self.pending[request_id] = time.monotonic()
        self.ws.send(json.dumps({"t": "gift", "id": request_id, "room": ROOM, "gift_id": "rose", "count": 1,
                                 "key": uuid.uuid4().hex}))
        self._expire()

    def _read(self) -> None:
        while True:
            try:
                raw = self.ws.recv()
            except websocket.WebSocketException:
                return
            msg = json.loads(raw)
            t = msg.get("t")
            if t == "gift" and msg.get("from") == self.user_id:
                sent = self.echo_wait.pop(msg["seq"], None)
                if sent is None:
                    self.seen_own.add(msg["seq"])  # the ack is still on its way
                else:
                    _report(self.environment, "ws gift echo", sent, length=len(raw))
            elif t == "ack":
                sent = self.pending.pop(msg["id"], time.monotonic())
                _report(self.environment, "ws gift ack", sent, length=len(raw))
                seq = msg["receipt"]["seq"]
                if seq in self.seen_own:
                    self.seen_own.discard(seq)
                    _report(self.environment, "ws gift echo", sent)
                else:
                    self.echo_wait[seq] = sent
            elif t == "error":
                sent = self.pending.pop(msg.get("id"), time.monotonic())
                _report(self.environment, "ws gift ack", sent, exc=RuntimeError(msg.get("code")))

    def _expire(self) -> None:
        now = time.monotonic()
        for seq, sent in list(self.echo_wait.items()):
            if now - sent > ECHO_TIMEOUT_S:
                del self.echo_wait[seq]
                _report(self.environment, "ws gift echo", sent, exc=TimeoutError(f"own gift seq {seq} never came back"))


class Buyer(HttpUser):
    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.token = _token(self.client, f"lb-{uuid.uuid4().hex[:12]}")

    @task
    def recharge(self) -> None:
        started = time.monotonic()
        try:
            _buy(self.client, self.token)
            _report(self.environment, "order paid", started)
        except Exception as exc:
            _report(self.environment, "order paid", started, exc=exc)
