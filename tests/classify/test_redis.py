"""Redis as the shared layer: hot cache, invalidation, single flight and rate limits across
processes (two app instances sharing one database and one Redis stand for two workers)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from tests.classify.test_api import sha, upload
from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from xintu.categories import Category


async def wait_until(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached before the deadline")


async def test_entries_reach_redis_and_another_process_reads_them(
    make_client: AppFactory, sqlite_url: str, redis_url: str, fake_llm: FakeLLM
) -> None:
    image = make_image(Category.pets, seed=1)
    settings = llm_settings(fake_llm, redis_url=redis_url)
    async with (
        make_client(database_url=sqlite_url, **settings) as (_, first),
        make_client(database_url=sqlite_url, **settings) as (second_app, second),
    ):
        await upload(first, image)
        redis = Redis.from_url(redis_url)
        assert await redis.exists(f"xintu:cache:{sha(image)}") == 1
        await redis.aclose()
        hit = await second.post("/api/v1/classify/check-cache", json={"image_hash": sha(image)})
        assert hit.json()["data"]["category"] == "pets"
        assert sha(image) in second_app.state.classification.cache._memory


async def test_purge_invalidates_other_processes(
    make_client: AppFactory, sqlite_url: str, redis_url: str, fake_llm: FakeLLM
) -> None:
    image = make_image(Category.foods, seed=2)
    settings = llm_settings(fake_llm, redis_url=redis_url)
    async with (
        make_client(database_url=sqlite_url, **settings) as (first_app, first),
        make_client(database_url=sqlite_url, **settings) as (second_app, second),
    ):
        await upload(first, image)
        check = {"image_hash": sha(image)}
        assert (await second.post("/api/v1/classify/check-cache", json=check)).json()["cached"]
        purged = await first_app.state.classification.cache.purge_model("gpt-4o-mini")
        assert purged == 1

        async def forgotten() -> bool:
            return sha(image) not in second_app.state.classification.cache._memory

        await wait_until(forgotten)
        after = await second.post("/api/v1/classify/check-cache", json=check)
    assert after.json()["cached"] is False


async def test_quorum_update_reaches_other_processes(
    make_client: AppFactory, sqlite_url: str, redis_url: str, fake_llm: FakeLLM
) -> None:
    claimed = sha(b"original")
    settings = llm_settings(fake_llm, redis_url=redis_url)
    async with (
        make_client(database_url=sqlite_url, client_host="10.1.0.1", **settings) as (_, one),
        make_client(database_url=sqlite_url, client_host="10.1.0.2", **settings) as (_, two),
        make_client(database_url=sqlite_url, client_host="10.1.0.3", **settings) as (_, three),
    ):
        await upload(one, make_image(Category.pets, seed=3), claimed)
        check = {"image_hash": claimed}
        assert not (await three.post("/api/v1/classify/check-cache", json=check)).json()["cached"]
        await upload(two, make_image(Category.pets, seed=4), claimed)

        async def shared_with_third() -> bool:
            answer = await three.post("/api/v1/classify/check-cache", json=check)
            return bool(answer.json()["cached"])

        # The third process hears of the change through pub/sub, a moment later.
        await wait_until(shared_with_third)


async def test_single_flight_across_processes(
    make_client: AppFactory, sqlite_url: str, redis_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.delay_s = 0.4
    image = make_image(Category.single_person, seed=5)
    settings = llm_settings(fake_llm, redis_url=redis_url)
    async with (
        make_client(database_url=sqlite_url, **settings) as (_, first),
        make_client(database_url=sqlite_url, **settings) as (_, second),
    ):
        responses = await asyncio.gather(
            *(upload(client, image) for client in [first, second] * 25)
        )
    assert {r.json()["data"]["category"] for r in responses} == {"single_person"}
    assert fake_llm.calls == 1
    assert sum(r.json()["data"]["inference_method"] == "remote" for r in responses) == 1


async def test_rate_limit_is_shared_through_redis(
    make_client: AppFactory, sqlite_url: str, redis_url: str
) -> None:
    settings = {"redis_url": redis_url, "rate_limit_check": "4/minute"}
    body = {"image_hash": "c" * 64}
    async with (
        make_client(database_url=sqlite_url, **settings) as (_, first),
        make_client(database_url=sqlite_url, **settings) as (_, second),
    ):
        statuses = [
            (await client.post("/api/v1/classify/check-cache", json=body)).status_code
            for client in [first, second, first, second, first]
        ]
    assert statuses == [200, 200, 200, 200, 429]
