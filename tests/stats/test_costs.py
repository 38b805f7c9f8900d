"""Saved cost counts only the cache hits that spared a remote call, on every database."""

from __future__ import annotations

import hashlib
import io

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import COMPLETION_TOKENS, FakeLLM, prompt_tokens
from tests.fixtures.images import make_image
from tests.fixtures.local_stand_in import StandInLocal
from tests.fixtures.screens import drawn_screenshot
from tests.stats.conftest import ADMIN, admin_headers
from xintu.categories import Category
from xintu.config import DEFAULT_MODEL_PRICES
from xintu.inference.pricing import call_cost, is_free_model

CALL_COST = float(
    call_cost(DEFAULT_MODEL_PRICES, "gpt-4o-mini", prompt_tokens(64, 48), COMPLETION_TOKENS)
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png(image: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")  # type: ignore[attr-defined]
    return buffer.getvalue()


async def upload(client: httpx.AsyncClient, data: bytes) -> dict:  # type: ignore[type-arg]
    response = await client.post("/api/v1/classify", files={"image": ("x", data, "image/png")})
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def hit(client: httpx.AsyncClient, data: bytes) -> None:
    response = await client.post("/api/v1/classify/check-cache", json={"image_hash": sha(data)})
    assert response.json()["cached"] is True, response.text


async def stats(app: FastAPI, client: httpx.AsyncClient, path: str) -> dict:  # type: ignore[type-arg]
    await app.state.classification.writer.flush()
    response = await client.get(f"/api/v1/stats/{path}", headers=await admin_headers(client))
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


def test_the_local_pipeline_and_the_precheck_are_free_models() -> None:
    from xintu.inference.local import MODEL_NAME

    assert is_free_model(MODEL_NAME)
    assert is_free_model("precheck")
    assert not is_free_model("gpt-4o-mini")
    assert not is_free_model("qwen-vl-plus")


async def test_hits_on_local_and_precheck_answers_save_nothing(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    photo = make_image(Category.pets, seed=1)
    local_photo = make_image(Category.foods, seed=2)
    screen = png(drawn_screenshot((1080, 2340), seed=3))

    # One instance answers locally (local_only mode caches those answers) …
    local = StandInLocal(Category.foods)
    async with make_client(
        database_url=database_url, local=local, inference_mode="local_only", **ADMIN
    ) as (_app, client):
        assert (await upload(client, local_photo))["model"] == local.model
        await hit(client, local_photo)

    # … another asks the LLM and runs the screenshot pre-check.
    async with make_client(
        database_url=database_url, **llm_settings(fake_llm, screenshot_precheck=True, **ADMIN)
    ) as (
        app,
        client,
    ):
        assert (await upload(client, photo))["inference_method"] == "remote"
        answer = await upload(client, screen)
        assert (answer["category"], answer["model"]) == ("screenshot", "precheck")
        for data in (photo, photo, screen, screen):
            await hit(client, data)
        assert fake_llm.calls == 1

        costs = await stats(app, client, "costs")
        efficiency = await stats(app, client, "cache-efficiency")
        today = await stats(app, client, "today")

    saved = 2 * CALL_COST
    assert (costs["total_calls"], costs["cache_hits"], costs["remote_calls_avoided"]) == (1, 5, 2)
    assert costs["total_cost"] == pytest.approx(CALL_COST, abs=1e-6)
    assert costs["cost_saved"] == pytest.approx(saved, abs=1e-6)
    assert costs["cost_without_cache"] == pytest.approx(CALL_COST + saved, abs=1e-6)
    assert costs["savings_rate"] == pytest.approx(2 / 3, abs=1e-4)
    by_model = {
        item["model"]: (item["cache_hits"], item["cost_saved"]) for item in costs["providers"]
    }
    assert by_model == {
        "gpt-4o-mini": (2, pytest.approx(saved, abs=1e-6)),
        "precheck": (2, 0.0),
        local.model: (1, 0.0),
    }
    # The parts add up: per provider, per day and in total.
    assert sum(item["cost_saved"] for item in costs["providers"]) == pytest.approx(
        costs["cost_saved"], abs=1e-6
    )
    assert sum(day["cost_saved"] for day in costs["daily"]) == pytest.approx(
        costs["cost_saved"], abs=1e-6
    )

    assert (efficiency["cache_hits"], efficiency["remote_calls_avoided"]) == (5, 2)
    assert efficiency["cost"] == pytest.approx(CALL_COST, abs=1e-6)
    assert efficiency["cost_saved"] == pytest.approx(saved, abs=1e-6)
    assert efficiency["savings_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert today["cost_saved"] == pytest.approx(saved, abs=1e-6)
