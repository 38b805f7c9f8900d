"""The album page at ``/`` in real headless Chromium against a real server."""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.clients.conftest import ARTIFACTS, LiveServer, PhotoFolder, build_folder
from tests.fixtures.fake_llm import COLOURS
from xintu.categories import CATEGORY_NAMES, Category

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = Path("/usr/bin/chromium")
BATCH = "/api/v1/classify/batch"
CHECK = "/api/v1/classify/batch-check-cache"
GEO = "/api/v1/geo/locate/batch"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        await browser.close()


async def open_album(browser: Any, url: str, width: int = 1100, height: int = 900) -> Any:
    page = await browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(f"console {message.type}: {message.text}")
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    page.errors = errors
    await page.goto(url)
    await page.wait_for_selector("body[data-ready='1']")
    return page


async def pick(page: Any, files: list[Path], run: int) -> None:
    await page.set_input_files("#pick-files", [str(path) for path in files])
    try:
        await page.wait_for_selector(f"body[data-done='{run}']", state="attached", timeout=30_000)
    except playwright_api.TimeoutError:
        state = await page.evaluate("JSON.stringify(document.body.dataset)")
        text = await page.inner_text("#progress") + " | " + await page.inner_text("#message")
        raise AssertionError(f"page did not finish: {state} {text} {page.errors}") from None


async def shown(page: Any) -> dict[str, str]:
    """image_hash → category of every card on the page."""
    cards = await page.eval_on_selector_all(
        ".card", "cards => cards.map(c => [c.dataset.hash, c.dataset.category])"
    )
    return dict(cards)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_album_uploads_once_and_shows_the_categories_of_the_api(
    live_server: LiveServer, browser: Any, tmp_path: Path
) -> None:
    folder: PhotoFolder = build_folder(tmp_path / "photos", photos=40, duplicates=4, non_images=3)
    files = sorted([*folder.expected, *folder.non_images, *folder.corrupt])
    distinct = {sha(path) for path in folder.expected}

    page = await open_album(browser, live_server.url + "/")
    await pick(page, files, 1)
    cards = await shown(page)
    assert set(cards) == distinct
    expected = {sha(path): category.value for path, category in folder.expected.items()}
    assert cards == expected
    assert live_server.counter.images[BATCH] == len(distinct)
    assert await page.get_attribute("body", "data-skipped") == str(len(folder.non_images))
    assert await page.inner_text("#failed-list") != ""  # the corrupt JPEG, never uploaded
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        answer = (await client.post(CHECK, json={"image_hashes": sorted(cards)})).json()
    assert {item["image_hash"]: item["data"]["category"] for item in answer["items"]} == cards
    for category in Category:
        count = sum(1 for value in cards.values() if value == category.value)
        section = page.locator(f"#cat-{category.value}")
        assert await section.is_visible() == bool(count)
        if count:
            assert await section.locator(".name").inner_text() == CATEGORY_NAMES[category]
            assert await section.locator(".count").inner_text() == str(count)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "album-first-run.png"), full_page=True)
    assert page.errors == []

    # A fresh page (and the plain-JavaScript SHA-256): the cache knows every photo now.
    live_server.counter.reset()
    again = await open_album(browser, live_server.url + "/?plain-sha256", width=390, height=844)
    await pick(again, files, 1)
    assert live_server.counter.requests[BATCH] == 0
    assert live_server.counter.requests[CHECK] == 1
    assert await shown(again) == expected
    assert await again.get_attribute("body", "data-uploaded") == "0"
    assert await again.get_attribute("body", "data-hits") == str(len(folder.expected))
    await again.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    # Polled from here: the page's CSP forbids the eval that wait_for_function needs.
    deadline = time.monotonic() + 10
    while not await again.evaluate("Array.from(document.images).every(image => image.complete)"):
        assert time.monotonic() < deadline, "the album's images never finished loading"
        await asyncio.sleep(0.05)
    await again.screenshot(path=str(ARTIFACTS / "album-second-run-phone.png"), full_page=True)
    assert again.errors == []


def gps_jpeg(path: Path) -> Path:
    image = Image.new("RGB", (320, 240), (90, 140, 200))
    image.paste(COLOURS[Category.travel_scenery], (0, 0, 8, 8))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 50.0)}
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    path.write_bytes(buffer.getvalue())
    return path


async def test_album_shows_place_names_from_exif_gps(
    live_server: LiveServer, browser: Any, tmp_path: Path
) -> None:
    points: list[dict[str, float]] = []
    if not any(getattr(route, "path", None) == GEO for route in live_server.app.routes):

        async def locate_batch(body: dict[str, Any]) -> dict[str, Any]:
            points.extend(body["points"])
            return {"success": True, "items": [{"display_name": "北京市 东城区"}] * len(points)}

        live_server.app.add_api_route(GEO, locate_batch, methods=["POST"])
    photo = gps_jpeg(tmp_path / "beijing.jpg")

    page = await open_album(browser, live_server.url + "/")
    await pick(page, [photo], 1)
    place = page.locator(".card .place")
    assert (await place.inner_text()).strip() != ""
    if points:
        assert points[0]["latitude"] == pytest.approx(39.9075, abs=1e-4)
        assert points[0]["longitude"] == pytest.approx(116.3972, abs=1e-4)
        assert await place.inner_text() == "北京市 东城区"


async def test_album_works_without_the_places_endpoint(
    live_server: LiveServer, browser: Any, tmp_path: Path
) -> None:
    page = await open_album(browser, live_server.url + "/")

    async def not_found(route: Any) -> None:
        await route.fulfill(status=404, content_type="application/json", body="{}")

    # A server without the places endpoint (an older deployment) answers 404.
    await page.route("**" + GEO, not_found)
    await pick(page, [gps_jpeg(tmp_path / "beijing.jpg")], 1)
    assert await page.locator(".card").count() == 1
    assert await page.locator(".card .place").is_hidden()
    assert page.errors == []
