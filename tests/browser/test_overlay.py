"""The creator overlay (server/static/overlay.*) in headless Chromium against a real server:
gifts sent by a real WebSocket client must show up on the page as a person would see them."""

from __future__ import annotations

import asyncio

import msgpack
import pytest
from playwright.async_api import Page, WebSocketRoute, expect

from server import keys
from tests.browser.conftest import record_alerts, screenshot, wait_for_alerts

SENDERS = ("bob", "carol", "dave", "erin", "frank", "grace")


@pytest.fixture
async def overlay_url(live_server, room) -> str:
    """The overlay URL the creator gets from the API (an overlay token for alice)."""
    async with live_server.http(live_server.token("alice", "creator")) as http:
        minted = (await http.post("/v1/live/overlay-token")).json()
    return live_server.http_url + minted["overlay_url"]


@pytest.fixture
async def funded(room):
    for user in SENDERS:
        await room.set_coins(user, 1000)


async def live_overlay(open_page, url: str, route=None) -> Page:
    """The overlay, once it has joined its room (its totals are the snapshot's)."""
    async def before(page: Page) -> None:
        await record_alerts(page)
        if route is not None:
            await page.route_web_socket("**/ws?*", route)

    page = await open_page(url, before=before)
    await page.wait_for_function("() => document.body.dataset.connection === 'live'")
    return page


async def test_a_gift_shows_its_alert_and_moves_the_counter_goal_and_top_gifters(
        live_server, funded, overlay_url, open_page, client):
    async with live_server.http(live_server.token("alice", "creator")) as http:
        await http.post("/v1/live/goal", json={"diamonds": 100})
    page = await live_overlay(open_page, overlay_url)
    await expect(page.locator("#goal-text")).to_have_text("0 / 100")
    bob = await client("bob")
    await bob.gift(gift_id="panda", count=2)
    alert = page.locator(".alert")
    await expect(alert).to_contain_text("bob")
    await expect(alert).to_contain_text("sent Panda")
    await expect(alert.locator(".alert-count")).to_have_text("× 2")
    await expect(alert.locator(".gift-art")).to_be_visible()
    await expect(page.locator("#diamonds")).to_have_text("10")
    await expect(page.locator("#goal-text")).to_have_text("10 / 100")
    await expect(page.locator("#top li")).to_have_text(["bob10"])
    await screenshot(page, "overlay_gift_alert", transparent=True)


async def test_a_burst_plays_every_alert_in_order_one_at_a_time(live_server, funded, overlay_url, open_page, client):
    page = await live_overlay(open_page, overlay_url)
    senders = [await client(user) for user in SENDERS[:5]]
    gifts = ["rose", "panda", "ice_cream", "tiktok", "love_bang"]
    acks = await asyncio.gather(*(s.gift(gift_id=g) for s, g in zip(senders, gifts, strict=True)))
    by_seq = sorted((ack["receipt"]["seq"], user, gift) for ack, user, gift in zip(acks, SENDERS[:5], gifts, strict=True))
    await expect(page.locator(".alert")).to_have_count(1)
    await screenshot(page, "overlay_burst", transparent=True)
    shown = await wait_for_alerts(page, 5)
    assert shown == [(user, gift, 1) for _, user, gift in by_seq]
    assert await page.evaluate("window.__mostAlertsAtOnce") == 1
    await expect(page.locator("#diamonds")).to_have_text("33")
    await expect(page.locator("#top li")).to_have_count(5)


async def test_combo_taps_grow_one_alert(live_server, funded, overlay_url, open_page, client):
    page = await live_overlay(open_page, overlay_url)
    bob = await client("bob")
    for _ in range(5):
        await bob.gift(gift_id="rose")  # five taps, five keys
    await expect(page.locator(".alert-count")).to_have_text("× 5")
    await expect(page.locator("#diamonds")).to_have_text("5")
    await screenshot(page, "overlay_combo", transparent=True)
    assert await wait_for_alerts(page, 1) == [("bob", "rose", 5)]


async def publish(redis, event: dict) -> None:
    """Publish a room event as a newer server would (next seq, same epoch): extra fields and all."""
    live = keys.live("alice")
    seq = await redis.hincrby(live, "seq", 1)
    epoch = (await redis.hget(live, "epoch")).decode()
    await redis.spublish(keys.room_channel("alice"), msgpack.packb({"room": "alice", "seq": seq, "epoch": epoch, **event}))


async def test_server_streaks_grow_one_alert_and_unknown_events_are_ignored(live_server, redis, overlay_url, open_page):
    page = await live_overlay(open_page, overlay_url)
    gift = {"t": "gift", "ts": 1, "live_id": "1", "from": "bob", "gift_id": "concert", "count": 1,
            "coins": 500, "diamonds": 500, "creator_diamonds": 500}
    await publish(redis, {"t": "viewers", "viewers": 12})
    for n in (1, 2, 3):
        await publish(redis, {**gift, "streak": {"id": 7, "count": n, "phase": "start" if n == 1 else "update"}})
    await publish(redis, {"t": "streak_end", "live_id": "1", "streak_id": 7, "from": "bob", "gift_id": "concert",
                          "count": 3, "coins": 1500})
    await expect(page.locator(".alert-count")).to_have_text("× 3")
    await expect(page.locator("#diamonds")).to_have_text("1,500")
    assert await wait_for_alerts(page, 1, timeout_ms=30_000) == [("bob", "concert", 3)]


async def test_reconnect_neither_repeats_nor_misses_a_gift(live_server, funded, overlay_url, open_page, client):
    link = {"up": True, "socket": None}

    async def route(ws: WebSocketRoute) -> None:
        """The overlay's network: while it is down, every connection attempt is closed at once."""
        if not link["up"]:
            await ws.close(code=1012)
            return
        ws.connect_to_server()
        link["socket"] = ws

    page = await live_overlay(open_page, overlay_url, route=route)
    senders = {user: await client(user) for user in SENDERS}
    for user in ("bob", "carol"):
        await senders[user].gift()
    await expect(page.locator("#diamonds")).to_have_text("2")

    link["up"] = False
    await link["socket"].close(code=1006)
    await page.wait_for_function("() => document.body.dataset.connection === 'reconnecting'")
    for user in ("dave", "erin"):  # sent while the overlay is away
        await senders[user].gift()
    link["up"] = True
    await page.wait_for_function("() => document.body.dataset.connection === 'live'", timeout=30_000)
    await expect(page.locator("#diamonds")).to_have_text("4")
    for user in ("frank", "grace"):
        await senders[user].gift()
    await expect(page.locator("#diamonds")).to_have_text("6")
    await expect(page.locator("#top li")).to_have_count(5)

    # The rejoin resumed with `since`: the gifts sent while away are replayed, so each of the six
    # gifts plays once, in order, none repeated.
    assert await wait_for_alerts(page, 6) == [(user, "rose", 1) for user in SENDERS]
