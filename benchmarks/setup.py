"""Preparing a run through giftcast's public HTTP API (docs/http.md), and checking it afterwards.

A giftcast server started with GIFTCAST_DEV_TOKENS=1 and GIFTCAST_SANDBOX_PAYMENTS=1 mints the
tokens, opens the creator's live, and funds each sender with sandbox orders (the webhook
credits them, as a real payment would). The peers share the same Valkey and token secret, so
the same users, room and balances serve every target. `wallet` reads a balance back (the
throughput scenario reconciles with it).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time

import httpx

__all__ = ["Population", "fund", "populate", "wallet"]

BUNDLE = "coins_17500"  # 17,500 + 875 bonus coins per order


@dataclasses.dataclass
class Population:
    creator: str
    creator_token: str
    viewer_tokens: list[str]
    sender_ids: list[str]
    sender_tokens: list[str]


def _token(client: httpx.Client, user: str, role: str = "viewer") -> str:
    reply = client.post("/dev/tokens", json={"user_id": user, "role": role})
    reply.raise_for_status()
    return reply.json()["token"]


def populate(base_url: str, *, creator: str, viewers: int, senders: int, prefix: str = "bench") -> Population:
    """Mint tokens (`viewers` distinct viewer users, shared round robin by the connections) and
    open the creator's live room."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        creator_token = _token(client, creator, "creator")
        client.post("/v1/live/open", headers={"authorization": f"Bearer {creator_token}"}).raise_for_status()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            viewer_tokens = list(pool.map(lambda i: _token(client, f"{prefix}-v{i:05d}"), range(viewers)))
        sender_ids = [f"{prefix}-s{i:03d}" for i in range(senders)]
        sender_tokens = [_token(client, user) for user in sender_ids]
    return Population(creator, creator_token, viewer_tokens, sender_ids, sender_tokens)


def wallet(base_url: str, token: str) -> dict[str, int]:
    reply = httpx.get(base_url + "/v1/me/wallet", headers={"authorization": f"Bearer {token}"}, timeout=30)
    reply.raise_for_status()
    return reply.json()


def fund(base_url: str, tokens: list[str], coins_each: int, timeout_s: float = 120.0) -> list[int]:
    """Buy enough sandbox orders that each user holds at least `coins_each` coins; returns the
    balances once every webhook has landed."""
    per_order = 17_500 + 875
    with httpx.Client(base_url=base_url, timeout=30) as client:
        targets = []
        for token in tokens:
            auth = {"authorization": f"Bearer {token}"}
            have = wallet(base_url, token)["coins"]
            orders = max(0, -(-(coins_each - have) // per_order))
            for _ in range(orders):
                order = client.post("/v1/orders", json={"bundle_id": BUNDLE}, headers=auth)
                order.raise_for_status()
                client.post(f"/sandbox/checkout/{order.json()['id']}", headers=auth).raise_for_status()
            targets.append(have + orders * per_order)
    deadline = time.monotonic() + timeout_s
    while True:
        balances = [wallet(base_url, token)["coins"] for token in tokens]
        if all(b >= t for b, t in zip(balances, targets, strict=True)):
            return balances
        if time.monotonic() > deadline:
            raise TimeoutError(f"sandbox payments did not land: {balances} < {targets}")
        time.sleep(0.1)
