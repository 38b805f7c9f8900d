"""Provider failures, the circuit breaker, the local fallback and the cache-write rules."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.classify.test_api import cache_row, log_rows, sha, upload
from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from tests.fixtures.local_stand_in import StandInLocal
from xintu.categories import Category
from xintu.models import ImageClassificationCache


@pytest.mark.parametrize("mode", ["error500", "error429", "timeout", "non_json", "off_list"])
async def test_provider_failure_falls_back_to_local_and_is_not_cached(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM, mode: str
) -> None:
    fake_llm.mode = mode
    local = StandInLocal(Category.foods)
    image = make_image(Category.pets, seed=1)
    settings = llm_settings(fake_llm, remote_timeout_s=0.5)
    async with make_client(database_url=sqlite_url, local=local, **settings) as (app, client):
        response = await upload(client, image)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert (data["category"], data["inference_method"], data["model"]) == (
            "foods",
            "local",
            "local-stand-in",
        )
        assert await cache_row(app, sha(image)) is None
        rows = await log_rows(app)
    assert rows[0].inference_method == "local"
    assert local.calls == 1


@pytest.mark.parametrize("mode", ["fenced", "chinese"])
async def test_provider_answers_in_fences_and_chinese_are_understood(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM, mode: str
) -> None:
    fake_llm.mode = mode
    async with make_client(database_url=sqlite_url, **llm_settings(fake_llm)) as (_, client):
        response = await upload(client, make_image(Category.idcard, seed=2))
    assert response.json()["data"]["category"] == "idcard"
    assert response.json()["data"]["inference_method"] == "remote"


async def test_next_upload_after_a_fallback_reaches_the_llm(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    image = make_image(Category.pets, seed=3)
    local = StandInLocal(Category.other)
    async with make_client(database_url=sqlite_url, local=local, **llm_settings(fake_llm)) as (
        app,
        client,
    ):
        fake_llm.mode = "error500"
        assert (await upload(client, image)).json()["data"]["inference_method"] == "local"
        fake_llm.mode = "ok"
        # A just-landed flight answers identical bytes for a few seconds; forget it.
        app.state.classification.flights._recent.clear()
        second = await upload(client, image)
    assert second.json()["data"]["inference_method"] == "remote"
    assert second.json()["data"]["category"] == "pets"


async def test_no_classifier_gives_503(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "error500"
    async with make_client(database_url=sqlite_url, **llm_settings(fake_llm)) as (app, client):
        response = await upload(client, make_image(Category.pets, seed=4))
        rows = await log_rows(app)
    assert_error(response, 503, "no_classifier_available")
    assert rows[0].status_code == 503
    assert rows[0].error_code == "no_classifier_available"


async def test_without_any_provider_key_and_local_the_answer_is_503(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        response = await upload(client, make_image(Category.pets, seed=5))
    assert_error(response, 503, "no_classifier_available")


async def test_circuit_opens_after_repeated_failures_and_recovers(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "error500"
    local = StandInLocal(Category.other)
    settings = llm_settings(fake_llm, circuit_failure_threshold=3, circuit_cooldown_s=60)
    async with make_client(database_url=sqlite_url, local=local, **settings) as (app, client):
        for seed in range(5):
            await upload(client, make_image(Category.pets, seed=10 + seed))
        assert fake_llm.calls == 3  # the last two skipped the open circuit
        health = (await client.get("/api/v1/health")).json()
        assert health["providers"][0]["circuit"] == "open"
        assert health["status"] == "degraded"

        breaker = app.state.classifier.remote[0].breaker
        breaker.cooldown_s = 0  # the cool-down is over: one trial call decides
        assert (await client.get("/api/v1/health")).json()["providers"][0]["circuit"] == (
            "half_open"
        )
        fake_llm.mode = "ok"
        trial = await upload(client, make_image(Category.pets, seed=20))
        assert trial.json()["data"]["inference_method"] == "remote"
        assert (await client.get("/api/v1/health")).json()["providers"][0]["circuit"] == "closed"


async def test_failed_trial_reopens_the_circuit(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "error500"
    settings = llm_settings(fake_llm, circuit_failure_threshold=1, circuit_cooldown_s=0)
    local = StandInLocal()
    async with make_client(database_url=sqlite_url, local=local, **settings) as (app, client):
        await upload(client, make_image(Category.pets, seed=30))
        breaker = app.state.classifier.remote[0].breaker
        breaker.cooldown_s = 3600
        assert breaker.state.value == "open"
        breaker.cooldown_s = 0
        await upload(client, make_image(Category.pets, seed=31))
        breaker.cooldown_s = 3600
        assert breaker.state.value == "open"
    assert fake_llm.calls == 2


async def test_second_provider_answers_when_the_first_fails(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    broken = FakeLLM(mode="error500")
    await broken.start()
    try:
        settings = {
            "providers": "dashscope,openai",
            "dashscope_api_key": "sk-ds",
            "dashscope_base_url": broken.base_url,
            "dashscope_model": "qwen-vl-plus",
            "openai_api_key": "sk-oa",
            "openai_base_url": fake_llm.base_url,
        }
        async with make_client(database_url=sqlite_url, **settings) as (app, client):
            response = await upload(client, make_image(Category.foods, seed=40))
            rows = await log_rows(app)
    finally:
        await broken.stop()
    assert response.json()["data"]["model"] == "gpt-4o-mini"
    assert (broken.calls, fake_llm.calls) == (1, 1)
    assert rows[0].provider == "openai"
    request = fake_llm.requests[0]
    assert request["headers"]["Authorization"] == "Bearer sk-oa"
    content = request["body"]["messages"][1]["content"]
    assert content[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")


async def test_local_only_mode_caches_local_answers(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    local = StandInLocal(Category.travel_scenery)
    image = make_image(Category.pets, seed=50)
    settings = llm_settings(fake_llm, inference_mode="local_only")
    async with make_client(database_url=database_url, local=local, **settings) as (app, client):
        first = await upload(client, image)
        assert first.json()["data"]["inference_method"] == "local"
        app.state.classification.flights._recent.clear()
        second = await upload(client, image)
        row = await cache_row(app, sha(image))
    assert second.json()["data"]["inference_method"] == "cache"
    assert row is not None
    assert row.inference_method == "local"
    assert fake_llm.calls == 0
    assert local.calls == 1


async def test_remote_only_mode_never_uses_local(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "error500"
    local = StandInLocal()
    settings = llm_settings(fake_llm, inference_mode="remote_only")
    async with make_client(database_url=sqlite_url, local=local, **settings) as (_, client):
        response = await upload(client, make_image(Category.pets, seed=60))
    assert_error(response, 503, "no_classifier_available")
    assert local.calls == 0


async def test_local_classify_never_touches_the_cache(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    local = StandInLocal(Category.screenshot)
    image = make_image(Category.pets, seed=70)
    async with make_client(database_url=sqlite_url, local=local, **llm_settings(fake_llm)) as (
        app,
        client,
    ):
        await upload(client, image)  # remote answer, cached
        response = await client.post(
            "/api/v1/local-classify", files={"image": ("p.jpg", image, "image/jpeg")}
        )
        await app.state.classification.writer.flush()
        async with app.state.db.sessionmaker() as session:
            entries = await session.scalar(
                select(func.count()).select_from(ImageClassificationCache)
            )
    body = response.json()
    assert body["data"]["category"] == "screenshot"
    assert body["data"]["inference_method"] == "local"
    assert body["data"]["details"] == {"stand_in": True}
    assert body["from_cache"] is False
    assert entries == 1


async def test_local_classify_without_local_pipeline_is_503(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        response = await client.post(
            "/api/v1/local-classify",
            files={"image": ("p.jpg", make_image(seed=80), "image/jpeg")},
        )
    assert_error(response, 503, "no_classifier_available")
