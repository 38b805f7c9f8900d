"""Fingerprints in the classification path (DESIGN §4.1): a confirming upload costs no LLM
call, a contradicting one is a vote, and a recompressed copy of a shared picture is
answered from its entry."""

from __future__ import annotations

import hashlib

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.photos import photo
from xintu.categories import Category
from xintu.models import ImageClassificationCache

CAT = "pets/chelsea.jpg"
ID_CARD = "idcard/idcard_front_1.jpg"
TRAVEL = "travel_scenery/china.jpg"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(client: httpx.AsyncClient, data: bytes, image_hash: str | None) -> httpx.Response:
    response = await client.post(
        "/api/v1/classify",
        files={"image": ("p.jpg", data, "image/jpeg")},
        data={"image_hash": image_hash} if image_hash else {},
    )
    assert response.status_code == 200, response.text
    return response


async def entry_of(app: FastAPI, image_hash: str) -> tuple[str, bool, bool] | None:
    async with app.state.db.sessionmaker() as session:
        row = await session.scalar(
            select(ImageClassificationCache).where(
                ImageClassificationCache.image_hash == image_hash
            )
        )
        return None if row is None else (row.category, row.shared, row.verified)


async def check(
    make_client: AppFactory, database_url: str, host: str, image_hash: str, **settings: object
) -> dict[str, object] | None:
    async with make_client(database_url=database_url, client_host=host, **settings) as (_, c):
        response = await c.post("/api/v1/classify/check-cache", json={"image_hash": image_hash})
    data: dict[str, object] | None = response.json()["data"]
    return data


async def test_a_matching_second_upload_confirms_without_an_llm_call(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm)
    original_hash = sha(b"the phone's original of the cat photo")
    async with make_client(database_url=database_url, client_host="10.0.0.1", **settings) as (
        app,
        first,
    ):
        answer = await upload(first, photo(CAT, Category.pets, quality=80), original_hash)
        assert answer.json()["data"]["inference_method"] == "remote"
        assert await entry_of(app, original_hash) == ("pets", False, False)
    async with make_client(database_url=database_url, client_host="10.0.0.2", **settings) as (
        app,
        second,
    ):
        # Another phone compresses differently: other bytes, the same picture.
        copy = photo(CAT, Category.pets, quality=60, long_side=720)
        confirmed = await upload(second, copy, original_hash)
        assert confirmed.json()["from_cache"] is True
        assert confirmed.json()["data"]["inference_method"] == "cache"
        assert confirmed.json()["data"]["category"] == "pets"
        assert await entry_of(app, original_hash) == ("pets", True, False)
    assert fake_llm.calls == 1
    shared = await check(make_client, database_url, "10.0.0.3", original_hash, **settings)
    assert shared is not None
    assert shared["category"] == "pets"


async def test_a_poisoned_claim_is_contradicted_by_uploads_of_the_real_picture(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    """Two IPs plant an ID card under V and reach the quorum (the second for free: same
    fingerprint). Uploads of the real picture under V do not match the entry's fingerprint:
    each is classified and votes; a tie demotes the entry, a majority replaces it."""
    settings = llm_settings(fake_llm)
    victim_hash = sha(b"the original travel photo")
    hosts = iter(f"10.0.1.{n}" for n in range(1, 20))

    async def upload_from_new_ip(data: bytes) -> tuple[str, tuple[str, bool, bool] | None]:
        async with make_client(database_url=database_url, client_host=next(hosts), **settings) as (
            app,
            client,
        ):
            category = (await upload(client, data, victim_hash)).json()["data"]["category"]
            return category, await entry_of(app, victim_hash)

    planted = photo(ID_CARD, Category.idcard)
    assert await upload_from_new_ip(planted) == ("idcard", ("idcard", False, False))
    assert await upload_from_new_ip(photo(ID_CARD, Category.idcard, quality=70)) == (
        "idcard",
        ("idcard", True, False),
    )
    assert fake_llm.calls == 1
    real = photo(TRAVEL, Category.travel_scenery)
    # 2 idcard votes to 1: still shared.
    assert await upload_from_new_ip(real) == ("travel_scenery", ("idcard", True, False))
    # 2 to 2: no category leads; the entry is back to its own voters.
    assert await upload_from_new_ip(real) == ("travel_scenery", ("idcard", False, False))
    assert await check(make_client, database_url, "10.0.2.1", victim_hash, **settings) is None
    # 3 to 2: the real picture's answer is shared.
    assert await upload_from_new_ip(real) == (
        "travel_scenery",
        ("travel_scenery", True, False),
    )
    fixed = await check(make_client, database_url, "10.0.2.2", victim_hash, **settings)
    assert fixed is not None
    assert fixed["category"] == "travel_scenery"
    assert fake_llm.calls == 4


async def test_a_server_hashed_upload_of_the_same_picture_verifies_without_an_llm_call(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm)
    original = photo(CAT, Category.pets, quality=95)
    async with make_client(database_url=sqlite_url, client_host="10.0.0.1", **settings) as (_, c):
        await upload(c, photo(CAT, Category.pets, quality=70), sha(original))
    async with make_client(database_url=sqlite_url, client_host="10.0.0.2", **settings) as (
        app,
        c,
    ):
        answer = await upload(c, original, None)
        assert answer.json()["data"]["inference_method"] == "cache"
        assert await entry_of(app, sha(original)) == ("pets", True, True)
    assert fake_llm.calls == 1


async def test_a_recompressed_copy_of_a_shared_picture_is_a_near_duplicate_hit(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm)
    original = photo(TRAVEL, Category.travel_scenery, quality=92)
    forwarded = photo(TRAVEL, Category.travel_scenery, quality=65, long_side=1024)
    claimed_copy = photo(TRAVEL, Category.travel_scenery, image_format="WEBP", quality=70)
    claimed_hash = sha(b"a forwarded copy's original")
    async with make_client(database_url=database_url, client_host="10.0.0.1", **settings) as (
        _,
        first,
    ):
        await upload(first, original, None)  # shared at once: the server hashed it
    async with make_client(database_url=database_url, client_host="10.0.0.2", **settings) as (
        app,
        second,
    ):
        near = await upload(second, forwarded, None)
        assert near.json()["from_cache"] is True
        assert near.json()["data"] | {"description": None, "confidence": None} == {
            "category": "travel_scenery",
            "category_name": "旅行风景",
            "confidence": None,
            "description": None,
            "image_hash": sha(forwarded),
            "inference_method": "cache",
            "model": "gpt-4o-mini",
            "near_duplicate": True,
        }
        claimed = await upload(second, claimed_copy, claimed_hash)
        assert claimed.json()["data"]["near_duplicate"] is True
        # Its own hashes are recorded: the next check-cache is an exact hit.
        for image_hash in (sha(forwarded), claimed_hash):
            hit = await second.post("/api/v1/classify/check-cache", json={"image_hash": image_hash})
            assert hit.json()["data"]["category"] == "travel_scenery"
            assert "near_duplicate" not in hit.json()["data"]
        # Recorded as this caller's vote, not shared on a fingerprint alone.
        assert await entry_of(app, claimed_hash) == ("travel_scenery", False, False)
    assert fake_llm.calls == 1
    assert await check(make_client, database_url, "10.0.0.3", claimed_hash, **settings) is None


async def test_unshared_entries_answer_no_near_duplicates(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    """A planted (claimed, unshared) entry is never handed to others as a near duplicate."""
    settings = llm_settings(fake_llm)
    async with make_client(database_url=sqlite_url, client_host="10.0.0.1", **settings) as (_, c):
        await upload(c, photo(ID_CARD, Category.idcard), sha(b"planted"))
    async with make_client(database_url=sqlite_url, client_host="10.0.0.2", **settings) as (_, c):
        answer = await upload(c, photo(ID_CARD, Category.other, quality=70), None)
        assert answer.json()["data"]["inference_method"] == "remote"
        assert answer.json()["data"]["category"] == "other"
    assert fake_llm.calls == 2
