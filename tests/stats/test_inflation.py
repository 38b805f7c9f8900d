"""Statistics a client cannot inflate (issue 11): repeated hashes count once, each hash
costs a check, and a client's label never appears or ranks as a user."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI
from sqlalchemy import func, select

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from tests.stats.conftest import ADMIN, admin_headers
from xintu.categories import Category
from xintu.models import ImageClassificationCache, RequestLog


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def log_count(app: FastAPI, endpoint: str) -> int:
    await app.state.classification.writer.flush()
    async with app.state.db.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(RequestLog).where(RequestLog.endpoint == endpoint)
        )
        return int(count or 0)


async def hit_count(app: FastAPI, image_hash: str) -> int:
    await app.state.classification.writer.flush()
    async with app.state.db.sessionmaker() as session:
        value = await session.scalar(
            select(ImageClassificationCache.hit_count).where(
                ImageClassificationCache.image_hash == image_hash
            )
        )
        return int(value or 0)


async def test_a_hash_repeated_in_one_batch_counts_once(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    """Ten requests each listing one hash 1,000 times: ten log rows and ten hits."""
    image = make_image(Category.pets, seed=1)
    async with make_client(database_url=database_url, **llm_settings(fake_llm)) as (app, client):
        await client.post("/api/v1/classify", files={"image": ("p.jpg", image, "image/jpeg")})
        for _ in range(10):
            response = await client.post(
                "/api/v1/classify/batch-check-cache", json={"image_hashes": [sha(image)] * 1000}
            )
            body = response.json()
            assert (body["total"], body["cached_count"]) == (1000, 1000)
            assert {item["data"]["category"] for item in body["items"]} == {"pets"}
        assert await log_count(app, "batch-check-cache") == 10
        assert await hit_count(app, sha(image)) == 10


async def test_each_hash_of_a_batch_counts_against_the_check_limit(
    make_client: AppFactory, sqlite_url: str
) -> None:
    distinct = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(1000)]
    async with make_client(database_url=sqlite_url, rate_limit_check="1500/hour") as (_, client):
        first = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": distinct}
        )
        assert first.status_code == 200
        second = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": distinct}
        )
        assert_error(second, 429, "rate_limited")
        # Repeats of one hash cost one lookup, not a thousand.
        repeats = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": [distinct[0]] * 1000}
        )
        assert repeats.status_code == 200
    # A batch larger than the whole limit costs the whole window rather than never passing.
    async with make_client(database_url=sqlite_url, rate_limit_check="100/hour") as (_, client):
        big = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": distinct}
        )
        assert big.status_code == 200
        after = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": distinct[:1]}
        )
        assert_error(after, 429, "rate_limited")


async def test_labels_never_rank_as_or_impersonate_users(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    """A signed-in user makes two requests; an anonymous client makes forty under labels
    that copy the user's key (in other spellings), an IP key or invented names. The user's
    row is unchanged, no label is listed, and the anonymous client is one caller: its IP."""
    image = make_image(Category.foods, seed=2)
    image_hash = sha(image)
    settings = llm_settings(fake_llm, **ADMIN)
    async with make_client(database_url=database_url, client_host="10.0.0.8", **settings) as (
        app,
        user_client,
    ):
        login = await user_client.post("/api/v1/auth/guest", json={"device_id": "phone-1"})
        user_id = login.json()["user"]["id"]
        token = {"Authorization": f"Bearer {login.json()['access_token']}"}
        await user_client.post(
            "/api/v1/classify", files={"image": ("p.jpg", image, "image/jpeg")}, headers=token
        )
        await user_client.post(
            "/api/v1/classify/check-cache", json={"image_hash": image_hash}, headers=token
        )
    labels = [f"user:{user_id}", f"USER:{user_id}", f" user:{user_id}", "ip:10.0.0.8"]
    labels += [f"vip-{n}" for n in range(6)]
    async with make_client(database_url=database_url, client_host="10.0.0.9", **settings) as (
        app,
        anonymous,
    ):
        for label in labels:
            for _ in range(2):
                await anonymous.post(
                    "/api/v1/classify/check-cache",
                    json={"image_hash": image_hash},
                    headers={"X-User-ID": label},
                )
                await anonymous.post(
                    "/api/v1/classify/check-cache",
                    json={"image_hash": image_hash, "user_id": label},
                )
        await app.state.classification.writer.flush()
        headers = await admin_headers(anonymous)
        top = await anonymous.get("/api/v1/stats/users/top", headers=headers)
        today = await anonymous.get("/api/v1/stats/today", headers=headers)
    users = {
        user["user_id"]: (user["requests"], user["cache_hits"])
        for user in top.json()["data"]["users"]
    }
    assert users == {f"user:{user_id}": (2, 1), "ip:10.0.0.9": (40, 40)}
    assert today.json()["data"]["unique_users"] == 2
