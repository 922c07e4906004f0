"""The viewer demo (client_demo/static) in headless Chromium against a real server, clicked
through as a viewer would: log in, buy, join, send, and read the errors."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import screenshot


async def logged_in(open_page, server, user: str = "dave") -> Page:
    page = await open_page(f"{server.http_url}/demo", width=1280, height=900)
    await page.fill("#user", user)
    await page.click("#login")
    await expect(page.locator("#who")).to_have_text(user)
    return page


async def joined(page: Page, room: str = "alice") -> None:
    await page.fill("#room", room)
    await page.click("#join")
    await expect(page.locator("#connection")).to_have_text("● connected")


async def test_viewer_buys_joins_and_sends_a_combo_everyone_sees(live_server, room, client, open_page):
    watcher = await client("carol")
    page = await logged_in(open_page, live_server)
    await page.click("[data-bundle=coins_70]")
    await expect(page.locator("#coins")).to_have_text("70", timeout=15_000)
    await joined(page)
    await expect(page.locator("#room-status")).to_have_text("LIVE")
    for _ in range(3):
        await page.click("#gifts [data-gift=rose]")  # three taps, three idempotency keys
    await expect(page.locator("#stage .alert")).to_contain_text("dave")
    await expect(page.locator("#stage .alert-count")).to_have_text("× 3")
    await expect(page.locator("#coins")).to_have_text("67")
    await expect(page.locator("#room-diamonds")).to_have_text("3")
    await screenshot(page, "demo_combo")
    events = [await watcher.next_event() for _ in range(3)]
    assert [(e["from"], e["gift_id"], e["count"]) for e in events] == [("dave", "rose", 1)] * 3
    assert len({e["seq"] for e in events}) == 3


async def test_someone_elses_gift_animates_on_the_viewer_page(live_server, room, client, open_page):
    await room.set_coins("bob", 100)
    page = await logged_in(open_page, live_server)
    await joined(page)
    await (await client("bob")).gift(gift_id="panda")
    await expect(page.locator("#stage .alert")).to_contain_text("sent Panda")
    await expect(page.locator("#feed li")).to_have_text(["bob sent Panda × 1"])


async def test_not_enough_coins_is_explained_and_nothing_is_spent(live_server, room, open_page):
    await room.set_coins("dave", 10)
    page = await logged_in(open_page, live_server)
    await joined(page)
    await page.click("#gifts [data-gift=universe]")
    message = page.locator("#message")
    await expect(message).to_have_attribute("data-code", "insufficient_funds")
    await expect(message).to_contain_text("Not enough coins for Universe: it costs 44,999, you have 10")
    await expect(page.locator("#coins")).to_have_text("10")
    await screenshot(page, "demo_insufficient_funds")
    assert (await room.wallets.balances("dave")).coins == 10


async def test_a_closed_room_is_explained(live_server, room, open_page):
    await room.set_coins("dave", 10)
    await room.lives.set_state("alice", "closed")
    page = await logged_in(open_page, live_server)
    await joined(page)
    await expect(page.locator("#room-status")).to_have_text("offline")
    await page.click("#gifts [data-gift=rose]")
    await expect(page.locator("#message")).to_have_attribute("data-code", "room_closed")


async def test_the_demo_says_when_dev_tokens_are_off(start_server, open_page):
    server = await start_server(dev_tokens=False)
    page = await open_page(f"{server.http_url}/demo")
    await page.click("#login")
    await expect(page.locator("#message")).to_contain_text("GIFTCAST_DEV_TOKENS=1")
    await expect(page.locator("#wallet")).to_be_hidden()
