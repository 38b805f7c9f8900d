"""The shared cache against a hostile client (DESIGN §3, §4.1): free identities and spoofed
headers do not make distinct uploaders, and what a server-hashed upload proves wins."""

from __future__ import annotations

import hashlib

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from tests.conftest import AppFactory, llm_settings, wechat_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.fake_wechat import FakeWechat
from tests.fixtures.images import make_image
from xintu.categories import Category
from xintu.models import ImageCacheClaim, ImageClassificationCache


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    image_hash: str | None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/api/v1/classify",
        files={"image": ("p.jpg", data, "image/jpeg")},
        data={"image_hash": image_hash} if image_hash else {},
        headers=headers or {},
    )


async def entry_of(app: FastAPI, image_hash: str) -> tuple[str, bool, bool] | None:
    """(category, shared, verified) of the stored entry."""
    async with app.state.db.sessionmaker() as session:
        row = await session.scalar(
            select(ImageClassificationCache).where(
                ImageClassificationCache.image_hash == image_hash
            )
        )
        return None if row is None else (row.category, row.shared, row.verified)


async def claims_of(app: FastAPI, image_hash: str) -> dict[str, str]:
    async with app.state.db.sessionmaker() as session:
        rows = await session.execute(
            select(ImageCacheClaim.uploader, ImageCacheClaim.category).where(
                ImageCacheClaim.image_hash == image_hash
            )
        )
        return dict(rows.all())


async def guest_headers(client: httpx.AsyncClient, device_id: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/guest", json={"device_id": device_id})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def wechat_headers(client: httpx.AsyncClient, code: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/wechat/login", json={"code": code})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def is_cached_for_someone_else(
    make_client: AppFactory, database_url: str, image_hash: str, **settings: object
) -> dict[str, object] | None:
    async with make_client(database_url=database_url, client_host="10.99.0.1", **settings) as (
        _,
        bystander,
    ):
        response = await bystander.post(
            "/api/v1/classify/check-cache", json={"image_hash": image_hash}
        )
    data: dict[str, object] | None = response.json()["data"]
    return data


async def test_guest_tokens_from_one_ip_do_not_make_a_quorum(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    """The attack of issue 11: an anonymous client classifies a travel photo under V, then
    two fresh guest tokens from the same IP upload an ID card under V. V's entry stays
    the travel answer, unshared; nobody else is answered from it."""
    settings = llm_settings(fake_llm)
    victim_hash = sha(b"the original travel photo")
    async with make_client(database_url=database_url, **settings) as (app, client):
        travel = await upload(client, make_image(Category.travel_scenery, seed=1), victim_hash)
        assert travel.json()["data"]["category"] == "travel_scenery"
        for device in ("attacker-1", "attacker-2"):
            headers = await guest_headers(client, device)
            planted = await upload(
                client, make_image(Category.idcard, seed=2), victim_hash, headers
            )
            assert planted.status_code == 200
        # Same IP, same caller: at most that caller's one vote (its latest answer).
        assert await entry_of(app, victim_hash) == ("travel_scenery", False, False)
        assert list(await claims_of(app, victim_hash)) == ["ip:127.0.0.1"]
    assert (
        await is_cached_for_someone_else(make_client, database_url, victim_hash, **settings) is None
    )


async def test_spoofed_forwarded_for_does_not_make_a_quorum(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm)
    victim_hash = sha(b"another original")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        for spoofed in ("198.51.100.1", "198.51.100.2"):
            await upload(
                client,
                make_image(Category.idcard, seed=3),
                victim_hash,
                {"X-Forwarded-For": spoofed},
            )
        assert await entry_of(app, victim_hash) == ("idcard", False, False)
    assert (
        await is_cached_for_someone_else(make_client, sqlite_url, victim_hash, **settings) is None
    )


async def test_wechat_verified_users_count_as_themselves(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM, fake_wechat: FakeWechat
) -> None:
    """Two WeChat users behind one IP are two uploaders, and each has its own limit."""
    settings = llm_settings(fake_llm, **wechat_settings(fake_wechat), rate_limit_classify="2/hour")
    image_hash = sha(b"a shared original")
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        alice = await wechat_headers(client, "alice")
        bob = await wechat_headers(client, "bob")
        for headers in (alice, bob):
            answer = await upload(client, make_image(Category.pets, seed=4), image_hash, headers)
            assert answer.status_code == 200, answer.text
        assert await entry_of(app, image_hash) == ("pets", True, False)
        # Each used one of their two uploads; anonymous callers of that IP have their own.
        for headers in (alice, bob, {}, {}):
            other = await upload(client, make_image(Category.foods, seed=5), None, headers)
            assert other.status_code == 200, other.text
        assert_error(
            await upload(client, make_image(Category.foods, seed=6), None), 429, "rate_limited"
        )


async def test_a_fresh_guest_token_does_not_lift_a_classify_limit(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, rate_limit_classify="2/hour", rate_limit_check="3/hour")
    async with make_client(database_url=sqlite_url, **settings) as (_, client):
        for seed in range(2):
            assert (await upload(client, make_image(seed=seed), None)).status_code == 200
        assert_error(await upload(client, make_image(seed=9), None), 429, "rate_limited")
        for device in ("fresh-1", "fresh-2"):
            headers = await guest_headers(client, device)
            refused = await upload(client, make_image(seed=9), None, headers)
            assert_error(refused, 429, "rate_limited")
            refused = await upload(client, make_image(seed=9), None, {"X-User-ID": device})
            assert_error(refused, 429, "rate_limited")
    assert fake_llm.calls == 2


async def test_a_server_hashed_upload_re_decides_a_quorum_entry(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    """Two uploaders plant an ID card under the hash of a travel photo and reach the quorum.
    An upload of the original itself (the server hashes it: V) is proof of what V is: it
    is classified, and its answer replaces the planted one for everyone, for good."""
    settings = llm_settings(fake_llm)
    original = make_image(Category.travel_scenery, seed=7, size=(320, 240))
    victim_hash = sha(original)
    for host in ("10.0.0.1", "10.0.0.2"):
        async with make_client(database_url=database_url, client_host=host, **settings) as (
            _,
            attacker,
        ):
            await upload(attacker, make_image(Category.idcard, seed=8), victim_hash)
    planted = await is_cached_for_someone_else(make_client, database_url, victim_hash, **settings)
    assert planted is not None
    assert planted["category"] == "idcard"

    async with make_client(database_url=database_url, client_host="10.0.0.3", **settings) as (
        app,
        owner,
    ):
        answer = await upload(owner, original, None)
        assert answer.json()["data"]["category"] == "travel_scenery"
        assert answer.json()["data"]["inference_method"] == "remote"
        assert await entry_of(app, victim_hash) == ("travel_scenery", True, True)
        # Claims no longer move a verified entry: more planted votes change nothing.
    for host in ("10.0.0.4", "10.0.0.5", "10.0.0.6"):
        async with make_client(database_url=database_url, client_host=host, **settings) as (
            app,
            attacker,
        ):
            again = await upload(attacker, make_image(Category.idcard, seed=9), victim_hash)
            assert again.json()["data"]["category"] == "travel_scenery"
            assert await entry_of(app, victim_hash) == ("travel_scenery", True, True)
    fixed = await is_cached_for_someone_else(make_client, database_url, victim_hash, **settings)
    assert fixed is not None
    assert fixed["category"] == "travel_scenery"
    assert fake_llm.calls == 3
