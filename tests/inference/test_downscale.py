"""Server-side downscale before the LLM: what reaches the (fake) provider, and what it costs."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
from fastapi import FastAPI
from PIL import Image, JpegImagePlugin
from sqlalchemy import select

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import COLOURS, FakeLLM, prompt_tokens
from xintu.categories import Category
from xintu.models import RequestLog


def photo(size: tuple[int, int], category: Category = Category.pets, **save: object) -> bytes:
    """A noisy, photo-like JPEG whose top-left quarter carries the category colour."""
    width, height = size
    noise = np.random.default_rng(7).normal(128, 40, (height, width, 3))
    image = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
    image.paste(COLOURS[category], (0, 0, width // 4, height // 4))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


async def logged_tokens(app: FastAPI, image_hash: str) -> int:
    await app.state.classification.writer.flush()
    async with app.state.db.sessionmaker() as session:
        row = (
            await session.execute(select(RequestLog).where(RequestLog.image_hash == image_hash))
        ).scalar_one()
    return int(row.input_tokens)


async def test_original_upload_reaches_the_llm_downscaled_and_costs_like_a_compressed_one(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    original = photo((4000, 3000))
    compressed = photo((1024, 768))
    async with make_client(database_url=sqlite_url, **llm_settings(fake_llm)) as (app, client):
        for data in (original, compressed):
            response = await client.post(
                "/api/v1/classify", files={"image": ("p.jpg", data, "image/jpeg")}
            )
            assert response.status_code == 200, response.text
            assert response.json()["data"]["category"] == "pets"
        original_tokens = await logged_tokens(app, hashlib.sha256(original).hexdigest())
        compressed_tokens = await logged_tokens(app, hashlib.sha256(compressed).hexdigest())

    assert fake_llm.image_sizes == [(1024, 768), (1024, 768)]
    # Sent as uploaded, the original would have cost over 12 times as much (prompt included).
    assert original_tokens == compressed_tokens == prompt_tokens(1024, 768)
    assert prompt_tokens(4000, 3000) > 12 * original_tokens


async def test_max_side_setting_and_exif_orientation_are_applied(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    rotated = photo((1600, 1200), exif=exif.tobytes())
    settings = llm_settings(fake_llm, remote_max_side=512)
    async with make_client(database_url=sqlite_url, **settings) as (_app, client):
        response = await client.post(
            "/api/v1/classify", files={"image": ("p.jpg", rotated, "image/jpeg")}
        )
        assert response.status_code == 200, response.text
    assert fake_llm.image_sizes == [(384, 512)]


async def test_lossless_screens_are_sent_without_chroma_subsampling(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    screen = Image.new("RGB", (2000, 1200), (255, 255, 255))
    screen.paste(COLOURS[Category.other], (0, 0, 400, 300))
    buffer = io.BytesIO()
    screen.save(buffer, "PNG")
    async with make_client(
        database_url=sqlite_url, **llm_settings(fake_llm, screenshot_precheck=False)
    ) as (_app, client):
        response = await client.post(
            "/api/v1/classify", files={"image": ("s.png", buffer.getvalue(), "image/png")}
        )
        assert response.status_code == 200, response.text
    url = fake_llm.requests[0]["body"]["messages"][1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (1024, 614)
    # 4:4:4: every pixel keeps its own colour, so thin coloured text stays sharp.
    assert JpegImagePlugin.get_sampling(sent) == 0
