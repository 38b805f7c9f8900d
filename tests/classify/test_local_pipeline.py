"""The real offline pipeline behind the classification API: fallback, local_only, and
``/local-classify`` with what the models saw."""

from __future__ import annotations

from pathlib import Path

from tests.classify.test_api import cache_row, sha, upload
from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import FakeLLM

EVAL = Path(__file__).resolve().parent.parent / "fixtures" / "images" / "local_eval"
CAT = (EVAL / "pets" / "chelsea.jpg").read_bytes()
ID_CARD = (EVAL / "idcard" / "idcard_front_1.jpg").read_bytes()


async def test_llm_down_falls_back_to_the_local_models_uncached(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.mode = "error500"
    settings = llm_settings(fake_llm, local_model_enabled=True)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        response = await upload(client, CAT)
        health = (await client.get("/api/v1/health")).json()
        entry = await cache_row(app, sha(CAT))
    data = response.json()["data"]
    assert (data["category"], data["inference_method"]) == ("pets", "local")
    assert data["model"].startswith("local")
    assert entry is None
    assert health["local_model"] == {"available": True, "loaded": True}


async def test_local_only_mode_answers_and_caches_without_any_key(
    make_client: AppFactory, sqlite_url: str
) -> None:
    settings = {"local_model_enabled": True, "inference_mode": "local_only"}
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        first = await upload(client, ID_CARD)
        second = await upload(client, ID_CARD)
        entry = await cache_row(app, sha(ID_CARD))
    assert first.json()["data"]["category"] == "idcard"
    assert first.json()["data"]["inference_method"] == "local"
    assert second.json()["from_cache"] is True
    assert entry is not None
    assert entry.inference_method == "local"


async def test_local_classify_shows_what_the_models_saw(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, local_model_enabled=True) as (_, client):
        response = await client.post(
            "/api/v1/local-classify", files={"file": ("cat.jpg", CAT, "image/jpeg")}
        )
    body = response.json()
    assert response.status_code == 200, response.text
    assert body["data"]["category"] == "pets"
    assert body["data"]["category_name"] == "宠物萌照"
    details = body["data"]["details"]
    assert details["faces"] == []
    assert {"label", "probability"} <= set(details["labels"][0])
    assert "cat" in details["labels"][0]["label"].lower()
