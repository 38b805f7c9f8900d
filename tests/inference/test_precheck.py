"""The screenshot pre-check on real rendered screenshots and on photos that look like screens,
directly and through the API."""

from __future__ import annotations

import hashlib
import io
import random
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.screens import (
    DESKTOPS,
    PHONES,
    article_screen,
    chat_screen,
    chromium,
    desktop_screen,
    drawn_screenshot,
    feed_screen,
    photo_of_screen,
    render_screens,
    settings_screen,
)
from xintu.images.validation import prepare_image
from xintu.inference import precheck

needs_chromium = pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed")


def encode(image: Image.Image, kind: str, exif: bytes | None = None) -> bytes:
    """``png`` as the phone saved it; ``client``: the 1024 px JPEG clients upload."""
    buffer = io.BytesIO()
    if kind == "png":
        image.save(buffer, "PNG", compress_level=1)
    else:
        copy = image.convert("RGB")
        copy.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
        copy.save(buffer, "JPEG", quality=85, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def detected(data: bytes) -> bool:
    return precheck.detect(prepare_image(data, 40_000_000)) is not None


@pytest.fixture(scope="module")
def rendered() -> list[Image.Image]:
    """Phone and desktop screens rendered by headless Chromium at real device sizes."""
    if chromium() is None:
        pytest.skip("Debian's chromium is not installed")
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as directory:
        phone = render_screens(
            PHONES[0],
            [design(rng, dark) for design in (chat_screen, settings_screen, feed_screen)
             for dark in (False, True)],
            Path(directory),
        )  # fmt: skip
        desktop = render_screens(
            DESKTOPS[0],
            [desktop_screen(rng, False), article_screen(rng, True)],
            Path(directory),
        )
    assert phone[0].size == (1080, 2400)
    assert desktop[0].size == (1920, 1080)
    return phone + desktop


@needs_chromium
def test_rendered_screenshots_are_recognised(rendered: list[Image.Image]) -> None:
    originals = [detected(encode(screen, "png")) for screen in rendered]
    assert all(originals), originals
    # The client's JPEG copy carries less evidence (no exact size, JPEG ringing); the test
    # is built for precision, so an occasional miss (one LLM call) is the accepted price.
    copies = [detected(encode(screen, "client")) for screen in rendered]
    assert sum(copies) >= len(copies) - 1, copies


@needs_chromium
def test_photos_of_screens_are_not_screenshots(rendered: list[Image.Image]) -> None:
    rng = random.Random(11)
    for screen in rendered:
        # Cropped to the screen's own aspect ratio and size, no EXIF: shaped like one.
        photo = photo_of_screen(screen, rng)
        assert photo.size == screen.size
        assert not detected(encode(photo, "png"))
        assert not detected(encode(photo, "client"))


def test_camera_exif_rules_out_a_screenshot() -> None:
    screen = drawn_screenshot((1080, 2340), seed=1)
    assert detected(encode(screen, "client"))
    exif = Image.Exif()
    exif[0x010F] = "Xiaomi"
    exif[0x0110] = "MI 9"
    assert not detected(encode(screen, "client", exif.tobytes()))


def test_camera_shaped_pictures_are_never_precheck_screenshots() -> None:
    # 4:3 is what cameras shoot; only an exact screen size of that shape would count.
    screen = drawn_screenshot((1200, 900), seed=2)
    assert not detected(encode(screen, "png"))


async def test_a_screenshot_upload_is_answered_without_the_llm_and_cached(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    screen = encode(drawn_screenshot((1170, 2532), seed=3), "png")
    settings = llm_settings(fake_llm, screenshot_precheck=True)
    async with make_client(database_url=sqlite_url, **settings) as (_app, client):
        response = await client.post(
            "/api/v1/classify", files={"image": ("s.png", screen, "image/png")}
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert (data["category"], data["inference_method"], data["model"]) == (
            "screenshot",
            "local",
            "precheck",
        )
        hit = await client.post(
            "/api/v1/classify/check-cache",
            json={"image_hash": hashlib.sha256(screen).hexdigest()},
        )
        assert hit.json()["cached"] is True
        assert hit.json()["data"]["model"] == "precheck"
    assert fake_llm.calls == 0


async def test_the_precheck_can_be_turned_off(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    screen = encode(drawn_screenshot((1170, 2532), seed=3), "png")
    settings = llm_settings(fake_llm, screenshot_precheck=False)
    async with make_client(database_url=sqlite_url, **settings) as (_app, client):
        response = await client.post(
            "/api/v1/classify", files={"image": ("s.png", screen, "image/png")}
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["inference_method"] == "remote"
    assert fake_llm.calls == 1
