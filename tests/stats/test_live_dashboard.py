"""The live panel of ``/admin`` in headless Chromium: its numbers move when traffic arrives."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import llm_settings
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.live_server import serve
from tests.stats.conftest import ADMIN
from tests.stats.test_stream import live_settings, traffic
from xintu.main import create_app

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (/usr/bin/chromium)"
)


async def test_live_panel_numbers_move_when_traffic_arrives(
    sqlite_url: str, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    from playwright.async_api import async_playwright, expect

    app = create_app(live_settings(sqlite_url, tmp_path, **llm_settings(fake_llm)))
    with serve(app) as base_url:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu"],
            )
            try:
                page = await browser.new_page(viewport={"width": 1366, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(f"{base_url}/admin")
                await page.fill("#username", ADMIN["admin_username"])
                await page.fill("#password", ADMIN["admin_password"])
                await page.click("#login-submit")
                # Two events: the stream is open and ticking.
                # (at least two: a tick may pass between two looks of the selector)
                await page.wait_for_selector(
                    "#live[data-events]:not([data-events='0']):not([data-events='1'])",
                    timeout=15_000,
                )
                assert await page.inner_text("#live-requests") == "0"
                assert await page.inner_text("#live-hit-rate") == "0.0%"
                assert await page.inner_text("#live-providers") == "openai: closed"
                assert await page.get_attribute("#live", "data-state") == "open"

                async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
                    await traffic(client)
                # (the page's CSP forbids eval, so no wait_for_function)
                await expect(page.locator("#live-requests")).to_have_text("6", timeout=15_000)
                assert await page.inner_text("#live-hit-rate") == "50.0%"
                assert await page.inner_text("#live-errors") == "1"
                assert await page.inner_text("#live-rps") == "0.10"
                assert await page.inner_text("#live-p95") != "—"
                assert await page.locator("#live-spark svg rect").count() >= 1
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"))

                # Signing out closes the stream.
                await page.click("#logout")
                await page.wait_for_selector("#live[data-state='closed']", state="attached")
            finally:
                await browser.close()
    assert errors == []
