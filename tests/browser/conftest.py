"""Browser tests: Debian's Chromium (headless) driven by Playwright against a real server.

Playwright drives the browser installed by the system (`apt-get install chromium`; `.ci/run`
installs it); it never downloads its own. Without /usr/bin/chromium these tests are skipped
and the run says so, except under CI (`CI=true`), where a skipped browser test is a failure.
Each test keeps screenshots under artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

# The WebSocket test client's fixtures (a real client over loopback), shared with these tests.
from tests.test_ws_gifting import client, room  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Under CI, a browser test that skipped (no Chromium) fails the run instead."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _under_ci() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"browser test skipped under CI: {report.longrepr}"


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium is not installed ({CHROMIUM} missing; apt-get install chromium): browser tests skipped")
    async with async_playwright() as playwright:
        # Playwright gives each launch a fresh profile (its own --user-data-dir) in a temp folder.
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def open_page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Awaitable[Page]]]:
    """Factory: a new page at `url`; any uncaught JavaScript error fails the test."""
    errors: list[str] = []
    pages: list[Page] = []

    async def open_(url: str, width: int = 1920, height: int = 1080, before: Callable[[Page], Awaitable[None]] | None = None) -> Page:
        page = await browser.new_page(viewport={"width": width, "height": height})
        page.on("pageerror", lambda error: errors.append(str(error)))
        pages.append(page)
        if before is not None:
            await before(page)
        await page.goto(url)
        return page

    yield open_
    for page in pages:
        await page.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


async def screenshot(page: Page, name: str, *, transparent: bool = False) -> Path:
    """Keep a screenshot as a run artifact: artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
    await page.screenshot(path=str(path), omit_background=transparent, full_page=not transparent)
    return path


# Records every gift alert element the page ever shows, and the most shown at once. Installed
# before the page's own scripts run.
ALERT_RECORDER = """
window.__alerts = [];
window.__mostAlertsAtOnce = 0;
new MutationObserver((mutations) => {
  for (const mutation of mutations) {
    for (const node of mutation.addedNodes) {
      if (node.classList && node.classList.contains("alert")) window.__alerts.push(node);
    }
  }
  const shown = document.querySelectorAll(".alert").length;
  window.__mostAlertsAtOnce = Math.max(window.__mostAlertsAtOnce, shown);
}).observe(document, {childList: true, subtree: true});
"""


async def record_alerts(page: Page) -> None:
    await page.add_init_script(ALERT_RECORDER)


async def alerts_seen(page: Page) -> list[tuple[str, str, int]]:
    """(sender, gift id, count) of every alert shown so far, in the order they appeared."""
    rows = await page.evaluate("window.__alerts.map(a => [a.dataset.from, a.dataset.gift, Number(a.dataset.count)])")
    return [tuple(row) for row in rows]


async def wait_for_alerts(page: Page, n: int, timeout_ms: float = 20_000) -> list[tuple[str, str, int]]:
    """Wait until `n` alerts have appeared and the last one has left the screen."""
    await page.wait_for_function(
        "n => window.__alerts.length >= n && document.querySelectorAll('.alert').length === 0", arg=n, timeout=timeout_ms)
    return await alerts_seen(page)
