"""The database made unreachable (a proxy cut between app and MariaDB/PostgreSQL): cache
hits the process holds keep being served, new classifications answer 503
``database_unavailable`` before any provider is paid, nothing answers 500, and once the
connection is back every served request is in the request log."""

from __future__ import annotations

import asyncio

import httpx

from tests.classify.test_api import cache_row, log_rows, sha, upload
from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from tests.fixtures.tcp_proxy import TcpProxy
from xintu.categories import Category


async def _wait_for_health(client: httpx.AsyncClient, status: int) -> None:
    deadline = asyncio.get_running_loop().time() + 15
    while (await client.get("/api/v1/health")).status_code != status:
        assert asyncio.get_running_loop().time() < deadline, "health never changed"
        await asyncio.sleep(0.05)


async def test_database_cut_mid_traffic(
    make_client: AppFactory, proxied_database: tuple[str, TcpProxy], fake_llm: FakeLLM
) -> None:
    url, proxy = proxied_database
    known = make_image(Category.pets, seed=1)
    new = make_image(Category.foods, seed=2)
    async with make_client(database_url=url, **llm_settings(fake_llm)) as (app, client):
        assert (await upload(client, known)).status_code == 200
        await app.state.classification.writer.flush()

        proxy.cut()
        # Hits from the in-process layer are still served.
        hit = await client.post("/api/v1/classify/check-cache", json={"image_hash": sha(known)})
        assert hit.status_code == 200
        assert hit.json()["cached"] is True
        reupload = await upload(client, known)
        assert reupload.status_code == 200
        assert reupload.json()["from_cache"] is True
        # A new image: refused before the provider is called.
        calls = fake_llm.calls
        assert_error(await upload(client, new), 503, "database_unavailable")
        assert_error(
            await client.post("/api/v1/classify/check-cache", json={"image_hash": sha(new)}),
            503,
            "database_unavailable",
        )
        assert fake_llm.calls == calls
        # Other endpoints that need the database: 503 in the API's shape, not 500.
        assert_error(
            await client.post("/api/v1/auth/guest", json={"device_id": "phone-1"}),
            503,
            "database_unavailable",
        )
        health = await client.get("/api/v1/health")
        assert health.status_code == 503
        assert health.json()["status"] == "down"

        proxy.resume()
        await _wait_for_health(client, 200)
        answer = await upload(client, new)
        assert answer.status_code == 200
        assert answer.json()["data"]["inference_method"] == "remote"
        assert fake_llm.calls == calls + 1
        rows = await log_rows(app)
        assert await cache_row(app, sha(new)) is not None

    served = [row for row in rows if row.status_code == 200]
    # First upload, the hit and re-upload during the outage, the upload after it.
    assert len(served) == 4
    assert sorted(row.status_code for row in rows) == [200, 200, 200, 200, 503]


async def test_database_lost_while_the_provider_answers(
    make_client: AppFactory, proxied_database: tuple[str, TcpProxy], fake_llm: FakeLLM
) -> None:
    url, proxy = proxied_database
    image = make_image(Category.travel_scenery, seed=3)
    # Long enough that the cut lands while the provider is still answering, even on a
    # loaded machine.
    fake_llm.delay_s = 3.0
    async with make_client(database_url=url, **llm_settings(fake_llm)) as (app, client):
        assert (await client.get("/api/v1/health")).status_code == 200
        pending = asyncio.create_task(upload(client, image))
        deadline = asyncio.get_running_loop().time() + 10
        while fake_llm.calls == 0:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        proxy.cut()
        # The provider's answer is paid for: it is returned, and its cache write queued.
        response = await pending
        assert response.status_code == 200
        assert response.json()["data"]["category"] == "travel_scenery"
        cache = app.state.classification.cache
        assert cache.pending_writes == 1

        proxy.resume()
        deadline = asyncio.get_running_loop().time() + 15
        while cache.pending_writes:
            assert asyncio.get_running_loop().time() < deadline, "queued write never landed"
            await asyncio.sleep(0.05)
        row = await cache_row(app, sha(image))
        assert row is not None
        assert row.category == "travel_scenery"
        assert len(await log_rows(app)) == 1
    assert fake_llm.calls == 1


async def test_an_unrelated_os_error_is_not_taken_for_a_database_outage(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (app, client):

        async def missing_file() -> None:
            open("/nonexistent/xintu-file")

        app.router.add_api_route("/broken-file", missing_file)
        response = await client.get("/broken-file")
        assert response.status_code == 500
        assert response.json()["code"] == "internal_error"
        # Classifications are not paused: the database was never in question.
        assert app.state.database_state.recently_failed is False
