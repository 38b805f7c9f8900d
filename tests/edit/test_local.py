"""The offline edits produce real edited images."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from tests.conftest import AppFactory
from tests.edit.conftest import ASTRONAUT, edit_settings, new_user, photo, submit, wait_finished
from xintu.edit.local import find_face, run_local_edit


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


def astronaut_off_centre() -> Image.Image:
    """The astronaut pasted into the right part of a wider, grey canvas."""
    canvas = Image.new("RGB", (1400, 700), (128, 128, 128))
    canvas.paste(Image.open(ASTRONAUT).convert("RGB"), (850, 120))
    return canvas


def test_enhance_raises_the_contrast_of_a_dull_photo() -> None:
    dull = Image.open(io.BytesIO(photo(seed=4, size=(320, 240), contrast=0.3)))
    before = np.asarray(dull.convert("L"), dtype=np.float32)
    after = decode(run_local_edit("enhance", dull, {"strength": 0.8})).mean(axis=2)
    assert after.shape == before.shape
    assert after.std() > before.std() * 1.5


def test_enhance_with_zero_strength_barely_changes_the_photo() -> None:
    image = Image.open(io.BytesIO(photo(seed=4, size=(320, 240))))
    unchanged = decode(run_local_edit("enhance", image, {"strength": 0.0}))
    assert np.abs(unchanged - decode(photo(seed=4, size=(320, 240)))).mean() < 3


def grain(pixels: np.ndarray) -> float:
    """Mean distance from a 5x5 median, away from dark (ink) pixels: texture and noise."""
    image = pixels.astype(np.uint8)
    residual = np.abs(image.astype(np.float32) - cv2.medianBlur(image, 5)).mean(axis=-1)
    bright = cv2.erode((image.max(axis=-1) > 40).astype(np.uint8), np.ones((5, 5), np.uint8))
    return float(residual[bright > 0].mean())


def test_cartoon_flattens_textures_and_draws_dark_edges() -> None:
    image = Image.open(ASTRONAUT)
    result = decode(run_local_edit("cartoon", image, {"levels": 8}))
    original = np.asarray(image.convert("RGB"))
    assert result.shape == original.shape
    assert grain(result) < 0.7 * grain(original)
    assert (result.max(axis=2) < 40).mean() > (original.max(axis=2) < 40).mean() + 0.05


def test_sketch_is_grey_and_mostly_paper_white() -> None:
    result = decode(run_local_edit("sketch", Image.open(ASTRONAUT), {"blur": 10.0}))
    assert result.shape == (512, 512, 3)
    assert np.abs(result[..., 0] - result[..., 1]).max() < 12  # no colour
    assert np.median(result) > 200


def test_id_photo_has_the_requested_size_and_centres_the_face() -> None:
    image = astronaut_off_centre()
    for size, expected in (("1inch", (295, 413)), ("2inch", (413, 579))):
        result = Image.open(io.BytesIO(run_local_edit("id_photo", image, {"size": size})))
        assert result.size == expected
        assert result.info.get("dpi", (0, 0))[0] == 300
        face = find_face(np.asarray(result)[:, :, ::-1].copy())
        assert face is not None, size
        x, y, w, h = face
        assert abs((x + w / 2) - expected[0] / 2) < expected[0] * 0.08
        assert 0.3 * expected[1] < y + h / 2 < 0.6 * expected[1]
        assert 0.25 < h / expected[1] < 0.55


def test_id_photo_without_a_face_is_a_centre_crop() -> None:
    image = Image.open(io.BytesIO(photo(seed=5, size=(600, 300))))
    result = Image.open(io.BytesIO(run_local_edit("id_photo", image, {"size": "1inch"})))
    assert result.size == (295, 413)


async def test_every_local_operation_runs_through_the_queue(
    make_client: AppFactory, sqlite_url: str
) -> None:
    astronaut = ASTRONAUT.read_bytes()
    async with make_client(database_url=sqlite_url, **edit_settings()) as (app, client):
        _, headers = await new_user(app)
        sizes = {}
        for operation, params in (
            ("enhance", None),
            ("cartoon", None),
            ("sketch", None),
            ("id_photo", '{"size": "2inch"}'),
        ):
            response = await submit(client, headers, astronaut, operation, params)
            task = await wait_finished(client, headers, response.json()["task_id"])
            assert task["status"] == "succeeded", task
            result = await client.get(task["result_url"], headers=headers)
            sizes[operation] = Image.open(io.BytesIO(result.content)).size
    assert sizes == {
        "enhance": (512, 512),
        "cartoon": (512, 512),
        "sketch": (512, 512),
        "id_photo": (413, 579),
    }
