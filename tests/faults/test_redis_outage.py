"""Redis killed and restarted under traffic: every request is answered (never 500), the
fallbacks (database for the hot cache, in-process single flight and rate limits) take
over, ``/health`` says ``degraded``, and Redis is used again once it is back."""

from __future__ import annotations

import asyncio

import httpx
from redis.asyncio import Redis

from tests.classify.test_api import log_rows, sha, upload
from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from tests.fixtures.redis_process import RedisProcess
from xintu.categories import Category


async def _health(client: httpx.AsyncClient) -> dict[str, object]:
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


async def _traffic(client: httpx.AsyncClient, known: bytes, new: list[bytes]) -> list[int]:
    """Concurrent uploads of new images, uploads and cache checks of a known one."""
    requests = [upload(client, image) for image in new]
    requests += [upload(client, known) for _ in range(3)]
    requests += [
        client.post("/api/v1/classify/check-cache", json={"image_hash": sha(known)})
        for _ in range(5)
    ]
    requests.append(
        client.post("/api/v1/classify/batch-check-cache", json={"image_hashes": [sha(known)]})
    )
    return [response.status_code for response in await asyncio.gather(*requests)]


async def test_redis_killed_and_restarted_mid_traffic(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM, redis_process: RedisProcess
) -> None:
    settings = llm_settings(
        fake_llm,
        redis_url=redis_process.url,
        rate_limit_classify="1000/minute",
        rate_limit_check="1000/minute",
    )
    known = make_image(Category.pets, seed=1)
    before = [make_image(Category.foods, seed=10 + i) for i in range(4)]
    during = [make_image(Category.travel_scenery, seed=20 + i) for i in range(4)]
    after = [make_image(Category.screenshot, seed=30 + i) for i in range(4)]
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        assert (await upload(client, known)).status_code == 200
        assert set(await _traffic(client, known, before)) == {200}
        assert (await _health(client))["status"] == "ok"

        redis_process.kill()
        # The in-process layer would hide the outage: make every lookup go past it.
        app.state.classification.cache._memory.clear()
        assert set(await _traffic(client, known, during)) == {200}
        health = await _health(client)
        assert health["status"] == "degraded"
        assert health["redis"]["ok"] is False  # type: ignore[index]
        calls_during = fake_llm.calls

        await redis_process.start()
        assert (await _health(client))["status"] == "ok"
        assert set(await _traffic(client, known, after)) == {200}
        # The answers of after the restart reach Redis again (no restart of the app).
        redis = Redis.from_url(redis_process.url)
        try:
            for image in after:
                assert await redis.exists(f"xintu:cache:{sha(image)}") == 1
        finally:
            await redis.aclose()
        rows = await log_rows(app)

    # One LLM call per distinct image, outage or not.
    assert calls_during == 1 + len(before) + len(during)
    assert fake_llm.calls == 1 + len(before) + len(during) + len(after)
    # Every classification served is in the request log: 1 upload, then per round the
    # uploads, 3 re-uploads, 5 checks and a batch check.
    per_round = 4 + 3 + 5 + 1
    assert len(rows) == 1 + 3 * per_round
    assert all(row.status_code == 200 for row in rows)


async def test_rate_limits_fall_back_to_in_process_while_redis_is_down(
    make_client: AppFactory, sqlite_url: str, redis_process: RedisProcess
) -> None:
    check = {"image_hash": "a" * 64}
    async with make_client(
        database_url=sqlite_url, redis_url=redis_process.url, rate_limit_check="5/minute"
    ) as (_, client):
        assert (await client.post("/api/v1/classify/check-cache", json=check)).status_code == 200
        redis_process.kill()
        statuses = [
            (await client.post("/api/v1/classify/check-cache", json=check)).status_code
            for _ in range(6)
        ]
        # Still limited, by this process alone (its count starts afresh).
        assert statuses == [200] * 5 + [429]

        await redis_process.start()
        assert (await _health(client))["redis"]["ok"] is True  # type: ignore[index]
        assert (await client.post("/api/v1/classify/check-cache", json=check)).status_code == 200
        redis = Redis.from_url(redis_process.url)
        try:
            assert [key async for key in redis.scan_iter(match="xintu:ratelimit*")]
        finally:
            await redis.aclose()


async def test_a_dead_redis_is_not_dialled_on_every_request(
    make_client: AppFactory, sqlite_url: str, redis_process: RedisProcess
) -> None:
    async with make_client(database_url=sqlite_url, redis_url=redis_process.url) as (app, client):
        redis_process.kill()
        check = {"image_hash": "b" * 64}
        for _ in range(20):
            response = await client.post("/api/v1/classify/check-cache", json=check)
            assert response.status_code == 200
        guard = app.state.redis_guard
        # The first failure opened a pause: the requests after it used the fallbacks
        # without a connection attempt.
        assert guard.available is False
