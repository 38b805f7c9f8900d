"""``LocalClassifier`` end to end on real images, and its concurrency bound."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xintu.categories import Category
from xintu.images.validation import prepare_image
from xintu.inference.base import ClassifierError, PreparedImage
from xintu.inference.local import LocalClassifier, LocalSettings
from xintu.inference.local import classifier as classifier_module


@pytest.mark.parametrize(
    ("relative", "category", "rule"),
    [
        ("pets/chelsea.jpg", Category.pets, "labels"),
        ("foods/coffee_crop.jpg", Category.foods, "labels"),
        ("travel_scenery/china.jpg", Category.travel_scenery, "labels"),
        ("single_person/grace_hopper.jpg", Category.single_person, "faces:single"),
        ("social_activities/group_4_scene_6.jpg", Category.social_activities, "faces:group"),
        ("social_activities/group_crowd_landmark.jpg", Category.social_activities, "faces:group"),
        ("screenshot/phone_chat_1080x2340.png", Category.screenshot, "screenshot:clock"),
        ("screenshot/desktop_docs_1366x768.png", Category.screenshot, "screenshot:ui_words"),
        ("idcard/idcard_front_1.jpg", Category.idcard, "idcard:gb11643"),
        ("idcard/passport_1.jpg", Category.idcard, "idcard:mrz"),
        ("other/rocket.jpg", Category.other, "fallback"),
        ("other/grass.jpg", Category.other, "fallback"),
        ("other/horse.jpg", Category.other, "graphic"),
    ],
)
async def test_classifies_evaluation_images(
    classifier: LocalClassifier,
    prepared: Callable[[str], PreparedImage],
    relative: str,
    category: Category,
    rule: str,
) -> None:
    prediction = await classifier.classify(prepared(relative))
    assert prediction.category == category
    assert prediction.inference_method == "local"
    assert prediction.provider == "local"
    assert prediction.model == classifier.model
    assert 0.0 <= prediction.confidence <= 1.0
    assert prediction.description
    details = prediction.details
    assert details is not None
    assert details["rule"] == rule
    assert {"faces", "ocr", "labels", "rule"} <= details.keys()
    assert all({"label", "probability"} == set(item) for item in details["labels"])
    json.dumps(details)  # goes straight into a JSON response


async def test_details_carry_the_evidence(
    classifier: LocalClassifier, prepared: Callable[[str], PreparedImage]
) -> None:
    card = await classifier.classify(prepared("idcard/idcard_front_1.jpg"))
    assert card.details is not None
    assert any("公民身份号码" in text for text in card.details["ocr"])
    group = await classifier.classify(prepared("social_activities/group_5_plain_3.jpg"))
    assert group.details is not None
    assert len(group.details["faces"]) == 5
    assert all(len(face["box"]) == 4 for face in group.details["faces"])


async def test_phone_screenshot_needs_only_its_status_bar_read(
    classifier: LocalClassifier, prepared: Callable[[str], PreparedImage]
) -> None:
    prediction = await classifier.classify(prepared("screenshot/phone_settings_750x1334.png"))
    assert prediction.category == Category.screenshot
    assert prediction.details is not None
    assert prediction.details["signals"]["ocr_scope"] == "status_bar"
    assert any(":" in text for text in prediction.details["ocr"])


def _encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


UNUSUAL_IMAGES = {
    "rgba": (Image.new("RGBA", (300, 200), (0, 0, 0, 0)), "PNG"),
    "tiny-gray": (Image.new("L", (8, 8), 128), "PNG"),
    "strip": (Image.new("RGB", (3000, 40), "white"), "JPEG"),
    "cmyk": (Image.new("CMYK", (120, 90), (0, 50, 50, 0)), "JPEG"),
    "gif": (Image.new("P", (64, 64)), "GIF"),
    "16-bit": (Image.fromarray((np.arange(4096).reshape(64, 64) * 16).astype(np.uint16)), "PNG"),
}


@pytest.mark.parametrize("name", sorted(UNUSUAL_IMAGES))
async def test_unusual_images_get_an_answer(classifier: LocalClassifier, name: str) -> None:
    image, image_format = UNUSUAL_IMAGES[name]
    data = _encode(image, image_format)
    prediction = await classifier.classify(prepare_image(data, max_pixels=40_000_000))
    assert prediction.category in set(Category)


async def test_large_upload_is_downscaled_before_work(
    classifier: LocalClassifier, eval_image: Callable[[str], Path]
) -> None:
    big = Image.open(eval_image("single_person/grace_hopper.jpg")).resize((4000, 4600))
    image = prepare_image(_encode(big, "JPEG", quality=80), max_pixels=40_000_000)
    prediction = await classifier.classify(image)
    assert prediction.category == Category.single_person
    assert prediction.details is not None
    assert prediction.details["timings_ms"]["prepare"] < 1000
    (face,) = prediction.details["faces"]
    x, y, w, h = face["box"]
    assert 0 <= x < x + w <= 4000  # pixels of the original upload
    assert 0 <= y < y + h <= 4600
    assert w > 400


async def test_exif_orientation_is_applied(
    classifier: LocalClassifier, eval_image: Callable[[str], Path]
) -> None:
    portrait = Image.open(eval_image("single_person/grace_hopper.jpg"))
    rotated = portrait.rotate(90, expand=True)
    exif = Image.Exif()
    exif[0x0112] = 8  # "rotate 90 CW to view": undoes the rotation above
    data = _encode(rotated, "JPEG", exif=exif.tobytes())
    prediction = await classifier.classify(prepare_image(data, max_pixels=40_000_000))
    assert prediction.category == Category.single_person


async def test_concurrency_is_bounded_and_the_loop_stays_free(
    data_dir: Path, prepared: Callable[[str], PreparedImage]
) -> None:
    local = LocalClassifier(data_dir, LocalSettings(max_concurrency=2))
    await local.load()
    image = prepared("pets/chelsea.jpg")
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(local.classify(image) for _ in range(8)))
    done.set()
    await tick_task
    local.close()
    assert {r.category for r in results} == {Category.pets}
    assert local.peak_in_flight == 2
    assert ticks >= 5  # the event loop kept running while models worked in threads


async def test_load_is_idempotent_and_models_are_shared(data_dir: Path) -> None:
    first = LocalClassifier(data_dir, LocalSettings(max_concurrency=2))
    second = LocalClassifier(data_dir, LocalSettings(max_concurrency=2))
    assert first.available
    assert not first.loaded
    await asyncio.gather(first.load(), first.load(), second.load())
    assert first.loaded
    assert second.loaded
    assert first._pipeline is second._pipeline
    first.close()
    second.close()


async def test_unavailable_packages_raise_classifier_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, prepared: Callable[[str], PreparedImage]
) -> None:
    monkeypatch.setattr(classifier_module, "missing_modules", lambda: ["rapidocr"])
    local = LocalClassifier(data_dir)
    assert not local.available
    with pytest.raises(ClassifierError, match="rapidocr"):
        await local.classify(prepared("pets/chelsea.jpg"))
    local.close()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XINTU_LOCAL_FACE_CONFIDENCE", "0.9")
    monkeypatch.setenv("XINTU_LOCAL_MAX_CONCURRENCY", "4")
    settings = LocalSettings()
    assert settings.face_confidence == 0.9
    assert settings.max_concurrency == 4
