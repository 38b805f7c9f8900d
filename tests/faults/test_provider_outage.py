"""A provider that hangs: requests answer within the timeout (local fallback, else 503),
never 500, nothing wrong is cached, and the provider is used again when it answers."""

from __future__ import annotations

from tests.classify.test_api import cache_row, log_rows, sha, upload
from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from tests.fixtures.local_stand_in import StandInLocal
from xintu.categories import Category


async def test_hanging_provider_falls_back_then_recovers(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "timeout"
    local = StandInLocal(Category.other)
    settings = llm_settings(fake_llm, remote_timeout_s=0.3, circuit_failure_threshold=100)
    images = [make_image(Category.pets, seed=i) for i in range(4)]
    async with make_client(database_url=sqlite_url, local=local, **settings) as (app, client):
        for image in images[:3]:
            response = await upload(client, image)
            assert response.status_code == 200
            assert response.json()["data"]["inference_method"] == "local"
            # A fallback answer is not cached (DESIGN §6).
            assert await cache_row(app, sha(image)) is None

        fake_llm.mode = "ok"
        response = await upload(client, images[3])
        assert response.json()["data"]["inference_method"] == "remote"
        assert (await cache_row(app, sha(images[3]))).category == "pets"  # type: ignore[union-attr]
        assert len(await log_rows(app)) == 4


async def test_hanging_provider_without_local_answers_503(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "timeout"
    settings = llm_settings(fake_llm, remote_timeout_s=0.3)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        image = make_image(Category.foods, seed=9)
        assert_error(await upload(client, image), 503, "no_classifier_available")
        assert await cache_row(app, sha(image)) is None
