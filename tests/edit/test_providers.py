"""Remote edits through the providers' real wire formats (a fake server on 127.0.0.1)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from tests.conftest import AppFactory
from tests.edit.conftest import edit_settings, new_user, photo, submit, wait_finished
from tests.fixtures.fake_image_edit import FakeImageEdit

PROMPT = '{"prompt": "make the sky blue"}'


async def edited_pixels(client, headers, task) -> np.ndarray:  # type: ignore[no-untyped-def]
    result = await client.get(task["result_url"], headers=headers)
    assert result.status_code == 200
    assert result.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(result.content)).convert("RGB"), dtype=np.int16)


def inverted(data: bytes) -> np.ndarray:
    return np.asarray(ImageOps.invert(Image.open(io.BytesIO(data)).convert("RGB")), dtype=np.int16)


async def test_dashscope_edit_uses_the_multimodal_generation_format(
    make_client: AppFactory, sqlite_url: str, fake_edit: FakeImageEdit
) -> None:
    image = photo(seed=1)
    async with make_client(database_url=sqlite_url, **edit_settings(fake_edit)) as (app, client):
        _, headers = await new_user(app)
        response = await submit(client, headers, image, "prompt_edit", PROMPT)
        task = await wait_finished(client, headers, response.json()["task_id"])
        assert task["status"] == "succeeded", task
        pixels = await edited_pixels(client, headers, task)
    [request] = fake_edit.requests
    assert request["provider"] == "dashscope"
    assert request["model"] == "qwen-image-edit"
    assert request["prompt"] == "make the sky blue"
    assert request["image"] == image  # a JPEG within limits is sent as uploaded
    assert request["parameters"]["watermark"] is False
    assert np.abs(pixels - inverted(image)).mean() < 3


async def test_openai_edit_uses_images_edits_multipart(
    make_client: AppFactory, sqlite_url: str, fake_edit: FakeImageEdit
) -> None:
    image = photo(seed=2)
    settings = edit_settings(fake_edit, edit_providers="openai")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await new_user(app)
        response = await submit(client, headers, image, "restyle", '{"style": "ink_wash"}')
        task = await wait_finished(client, headers, response.json()["task_id"])
        assert task["status"] == "succeeded", task
        pixels = await edited_pixels(client, headers, task)
    [request] = fake_edit.requests
    assert request["provider"] == "openai"
    assert request["model"] == "gpt-image-1"
    assert "ink wash" in request["prompt"]
    assert request["content_type"] == "image/jpeg"
    assert request["n"] == "1"
    assert request["response_format"] is None  # gpt-image-1 rejects it
    assert np.abs(pixels - inverted(image)).mean() < 3


async def test_a_failing_provider_falls_back_to_the_next(
    make_client: AppFactory, sqlite_url: str, fake_edit: FakeImageEdit
) -> None:
    fake_edit.modes["dashscope"] = "error500"
    async with make_client(database_url=sqlite_url, **edit_settings(fake_edit)) as (app, client):
        _, headers = await new_user(app)
        response = await submit(client, headers, photo(), "prompt_edit", PROMPT)
        task = await wait_finished(client, headers, response.json()["task_id"])
    assert task["status"] == "succeeded"
    assert task["attempts"] == 1
    assert fake_edit.calls == {"dashscope": 1, "openai": 1}


async def test_transient_failures_are_retried_with_backoff(
    make_client: AppFactory, sqlite_url: str, fake_edit: FakeImageEdit
) -> None:
    fake_edit.fail_first = {"dashscope": 2, "openai": 0}
    settings = edit_settings(fake_edit, edit_providers="dashscope")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await new_user(app)
        response = await submit(client, headers, photo(), "prompt_edit", PROMPT)
        task = await wait_finished(client, headers, response.json()["task_id"])
    assert task["status"] == "succeeded", task
    assert task["attempts"] == 3
    assert fake_edit.calls["dashscope"] == 3


async def test_retries_end_in_failed_with_a_clear_error(
    make_client: AppFactory, sqlite_url: str, fake_edit: FakeImageEdit
) -> None:
    fake_edit.modes = {"dashscope": "error429", "openai": "malformed"}
    settings = edit_settings(fake_edit, edit_max_attempts=2, billing_enabled=True)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await new_user(app, credits=100)
        response = await submit(client, headers, photo(), "prompt_edit", PROMPT)
        task = await wait_finished(client, headers, response.json()["task_id"])
        inputs = list((app.state.settings.data_dir / "edit" / "inputs").iterdir())
    assert task["status"] == "failed"
    assert task["attempts"] == 2
    assert task["error"].startswith("Gave up after 2 attempts")
    assert "dashscope answered HTTP 429" in task["error"]
    assert "openai sent a malformed response" in task["error"]
    assert task["credits_charged"] == 0
    assert inputs == []


async def test_a_refused_input_fails_at_once_without_retry(
    make_client: AppFactory, sqlite_url: str, fake_edit: FakeImageEdit
) -> None:
    fake_edit.modes = {"dashscope": "error400", "openai": "error400"}
    async with make_client(database_url=sqlite_url, **edit_settings(fake_edit)) as (app, client):
        _, headers = await new_user(app)
        response = await submit(client, headers, photo(), "prompt_edit", PROMPT)
        task = await wait_finished(client, headers, response.json()["task_id"])
        breakers = [slot.breaker.state.value for slot in app.state.edit.chain.slots]
    assert task["status"] == "failed"
    assert task["attempts"] == 1
    assert "DataInspectionFailed" in task["error"]
    assert breakers == ["closed", "closed"]  # the providers work; they refused the input


async def test_the_circuit_opens_after_repeated_failures(
    make_client: AppFactory, sqlite_url: str, fake_edit: FakeImageEdit
) -> None:
    fake_edit.modes["dashscope"] = "error500"
    settings = edit_settings(fake_edit, circuit_failure_threshold=2, circuit_cooldown_s=60)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        _, headers = await new_user(app)
        for seed in range(4):
            response = await submit(client, headers, photo(seed=seed), "prompt_edit", PROMPT)
            task = await wait_finished(client, headers, response.json()["task_id"])
            assert task["status"] == "succeeded"
        states = [slot.breaker.state.value for slot in app.state.edit.chain.slots]
    assert fake_edit.calls == {"dashscope": 2, "openai": 4}
    assert states == ["open", "closed"]
