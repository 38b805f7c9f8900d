"""The classification contract of DESIGN §4.1 over HTTP, on every configured database."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from decimal import Decimal

import httpx
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import select

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import COMPLETION_TOKENS, FakeLLM, prompt_tokens
from tests.fixtures.images import make_image
from xintu.categories import CATEGORY_NAMES, Category
from xintu.models import ImageClassificationCache, RequestLog

HEX = "0123456789abcdef"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def flush(app: FastAPI) -> None:
    await app.state.classification.writer.flush()


async def log_rows(app: FastAPI) -> list[RequestLog]:
    await flush(app)
    async with app.state.db.sessionmaker() as session:
        return list((await session.scalars(select(RequestLog).order_by(RequestLog.id))).all())


async def cache_row(app: FastAPI, image_hash: str) -> ImageClassificationCache | None:
    await flush(app)
    async with app.state.db.sessionmaker() as session:
        return await session.scalar(
            select(ImageClassificationCache).where(
                ImageClassificationCache.image_hash == image_hash
            )
        )


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    image_hash: str | None = None,
    field: str = "image",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    form = {"image_hash": image_hash} if image_hash else {}
    return await client.post(
        "/api/v1/classify",
        files={field: ("photo.jpg", data, "image/jpeg")},
        data=form,
        headers=headers or {},
    )


async def test_categories_lists_all_eight_with_chinese_names(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        response = await client.get("/api/v1/categories")
    assert response.status_code == 200
    categories = response.json()["categories"]
    assert [c["category"] for c in categories] == [c.value for c in Category]
    assert categories[1]["category_name"] == "宠物萌照"


async def test_remote_miss_then_check_cache_hit_bumps_hit_count(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    original = make_image(Category.foods, seed=1, size=(400, 300))
    compressed = make_image(Category.foods, seed=1, size=(200, 150))
    original_hash = sha(original)
    async with make_client(database_url=database_url, **llm_settings(fake_llm)) as (app, client):
        miss = await client.post(
            "/api/v1/classify/check-cache",
            json={"image_hash": original_hash.upper()},
            headers={"X-User-ID": "device-1"},
        )
        assert miss.status_code == 200
        assert miss.json() | {"request_id": None, "timestamp": None} == {
            "success": True,
            "cached": False,
            "from_cache": False,
            "data": None,
            "request_id": None,
            "timestamp": None,
        }

        first = await upload(client, compressed, original_hash, headers={"X-User-ID": "device-1"})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["success"] is True
        assert body["from_cache"] is False
        assert body["data"] == {
            "category": "foods",
            "category_name": "美食记录",
            "confidence": 0.93,
            "description": "测试图片",
            "image_hash": original_hash,
            "inference_method": "remote",
            "model": "gpt-4o-mini",
        }
        assert body["processing_time_ms"] >= 0
        assert body["timestamp"].endswith("+00:00")
        assert first.headers["x-request-id"] == body["request_id"]

        hit = await client.post(
            "/api/v1/classify/check-cache",
            json={"image_hash": original_hash, "user_id": "device-1"},
        )
        assert hit.json()["cached"] is True
        assert hit.json()["from_cache"] is True
        assert hit.json()["data"]["inference_method"] == "cache"
        assert hit.json()["data"]["category"] == "foods"

        row = await cache_row(app, original_hash)
        assert row is not None
        assert row.hit_count == 1
        assert row.last_hit_at is not None
        assert row.size_bytes == len(compressed)
        assert row.model == "gpt-4o-mini"
        assert fake_llm.calls == 1

        rows = await log_rows(app)
    # The check-cache miss wrote no row: miss + upload count as one request.
    assert [(r.endpoint, r.inference_method, r.from_cache) for r in rows] == [
        ("classify", "remote", False),
        ("check-cache", "cache", True),
    ]
    remote = rows[0]
    assert (remote.user_id, remote.client_label) == (None, "device-1")
    # The fake LLM counts the tokens of the 200×150 picture it received, as Qwen-VL does.
    tokens = prompt_tokens(200, 150)
    assert (remote.input_tokens, remote.output_tokens) == (tokens, COMPLETION_TOKENS)
    # gpt-4o-mini: CNY 0.0011 per 1,000 input tokens, 0.0044 per 1,000 output tokens
    expected = (Decimal(tokens) * Decimal("0.0011") + 30 * Decimal("0.0044")) / 1000
    assert Decimal(remote.cost) == expected.quantize(Decimal("0.000001"))
    assert rows[1].size_bytes == len(compressed)


async def test_upload_without_hash_uses_server_hash_and_is_shared(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    image = make_image(Category.pets, seed=2)
    async with make_client(database_url=database_url, **llm_settings(fake_llm)) as (_, client):
        first = await upload(client, image, field="file")
        assert first.json()["data"]["image_hash"] == sha(image)
    async with make_client(
        database_url=database_url, client_host="10.0.0.9", **llm_settings(fake_llm)
    ) as (_, client):
        other_ip = await client.post(
            "/api/v1/classify/check-cache", json={"image_hash": sha(image)}
        )
    assert other_ip.json()["cached"] is True
    assert other_ip.json()["data"]["category"] == "pets"


async def test_raw_body_upload_with_x_image_hash(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    image = make_image(Category.screenshot, seed=3, image_format="PNG")
    claimed = sha(b"original of " + image)
    async with make_client(database_url=database_url, **llm_settings(fake_llm)) as (_, client):
        response = await client.post(
            "/api/v1/classify",
            content=image,
            headers={"Content-Type": "image/png", "X-Image-Hash": claimed},
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["category"] == "screenshot"
        assert response.json()["data"]["image_hash"] == claimed
        again = await client.post(
            "/api/v1/classify",
            content=image,
            headers={"Content-Type": "image/png", "X-Image-Hash": claimed},
        )
    assert again.json()["from_cache"] is True
    assert again.json()["data"]["inference_method"] == "cache"
    assert fake_llm.calls == 1


async def test_every_upload_format_is_accepted(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    async with make_client(database_url=sqlite_url, **llm_settings(fake_llm)) as (_, client):
        for seed, image_format in enumerate(["JPEG", "PNG", "WEBP", "GIF", "BMP", "HEIF"]):
            image = make_image(Category.travel_scenery, seed=100 + seed, image_format=image_format)
            response = await upload(client, image)
            assert response.status_code == 200, (image_format, response.text)
            # GIF's palette shifts colours a little; the category survives.
            assert response.json()["data"]["category"] == "travel_scenery", image_format


async def test_upload_errors_have_codes_and_are_logged(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, max_upload_bytes=50_000, max_image_pixels=1_000_000)
    async with make_client(database_url=database_url, **settings) as (app, client):
        too_large = await upload(client, b"\xff\xd8\xff" + b"0" * 60_000)
        assert_error(too_large, 413, "image_too_large")
        too_large_raw = await client.post(
            "/api/v1/classify", content=b"0" * 60_000, headers={"Content-Type": "image/jpeg"}
        )
        assert_error(too_large_raw, 413, "image_too_large")
        assert_error(await upload(client, b"%PDF-1.4 not an image"), 415, "unsupported_media_type")
        good = make_image(Category.pets, seed=4)
        assert_error(await upload(client, good[: len(good) // 2]), 400, "invalid_image")
        buffer = io.BytesIO()
        Image.new("L", (2000, 1000)).save(buffer, "PNG")
        assert_error(await upload(client, buffer.getvalue()), 400, "invalid_image")
        assert_error(await upload(client, good, "not-a-hash"), 422, "invalid_hash")
        assert_error(
            await client.post("/api/v1/classify", files={"image_hash": (None, "a" * 64)}),
            422,
            "missing_image",
        )
        assert_error(
            await client.post(
                "/api/v1/classify", content=b"{}", headers={"Content-Type": "application/json"}
            ),
            415,
            "unsupported_media_type",
        )
        rows = await log_rows(app)
        cached = await cache_row(app, sha(good))
    assert fake_llm.calls == 0
    assert cached is None
    assert sorted(r.error_code for r in rows if r.error_code) == sorted(
        [
            "image_too_large",
            "image_too_large",
            "unsupported_media_type",
            "invalid_image",
            "invalid_image",
            "invalid_hash",
            "missing_image",
            "unsupported_media_type",
        ]
    )


async def test_check_cache_validation(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        assert_error(
            await client.post("/api/v1/classify/check-cache", json={"image_hash": "xyz"}),
            422,
            "invalid_hash",
        )
        assert_error(
            await client.post("/api/v1/classify/check-cache", json={"image_hash": "g" * 64}),
            422,
            "invalid_hash",
        )
        assert_error(
            await client.post("/api/v1/classify/check-cache", json={}), 422, "validation_error"
        )
        assert_error(
            await client.post(
                "/api/v1/classify/check-cache",
                content=b"not json",
                headers={"Content-Type": "application/json"},
            ),
            422,
            "validation_error",
        )
        assert_error(
            await client.post("/api/v1/classify/batch-check-cache", json={"image_hashes": []}),
            422,
            "validation_error",
        )
        assert_error(
            await client.post(
                "/api/v1/classify/batch-check-cache", json={"image_hashes": ["a" * 64] * 1001}
            ),
            422,
            "validation_error",
        )
        bad = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": ["a" * 64, "nope"]}
        )
        assert_error(bad, 422, "invalid_hash")
        assert "image_hashes[1]" in bad.json()["detail"]


async def test_batch_check_cache_keeps_request_order(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    images = [make_image(Category.pets, seed=10), make_image(Category.idcard, seed=11)]
    async with make_client(database_url=database_url, **llm_settings(fake_llm)) as (app, client):
        for image in images:
            assert (await upload(client, image)).status_code == 200
        unknown = [HEX[i % 16] * 64 for i in range(998)]
        hashes = [unknown[0], sha(images[1]), *unknown[1:], sha(images[0])]
        response = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": hashes}
        )
        body = response.json()
        rows = await log_rows(app)
    assert response.status_code == 200
    assert body["total"] == 1000
    assert body["cached_count"] == 2
    assert [item["image_hash"] for item in body["items"]] == hashes
    assert body["items"][1]["data"]["category"] == "idcard"
    assert body["items"][1]["data"]["category_name"] == CATEGORY_NAMES[Category.idcard]
    assert body["items"][-1]["data"]["category"] == "pets"
    assert body["items"][0] == {"image_hash": hashes[0], "cached": False, "data": None}
    assert sum(1 for r in rows if r.endpoint == "batch-check-cache") == 2


async def test_batch_classify_one_bad_file_does_not_fail_the_batch(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    pets = make_image(Category.pets, seed=20)
    food = make_image(Category.foods, seed=21)
    claimed = sha(b"original pets")
    files = [
        ("images", ("a.jpg", pets, "image/jpeg")),
        ("images", ("b.txt", b"hello", "text/plain")),
        ("images", ("c.jpg", food, "image/jpeg")),
        ("images", ("d.jpg", pets, "image/jpeg")),
    ]
    async with make_client(database_url=database_url, **llm_settings(fake_llm)) as (app, client):
        response = await client.post(
            "/api/v1/classify/batch",
            files=files,
            data={"image_hashes": json.dumps([claimed, None, "", None])},
        )
        rows = await log_rows(app)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["success_count"], body["fail_count"]) == (4, 3, 1)
    items = body["items"]
    assert [item["index"] for item in items] == [0, 1, 2, 3]
    assert items[0]["data"]["category"] == "pets"
    assert items[0]["data"]["image_hash"] == claimed
    assert items[1]["success"] is False
    assert items[1]["error_code"] == "unsupported_media_type"
    assert items[1]["filename"] == "b.txt"
    assert items[2]["data"]["category"] == "foods"
    assert items[3]["data"]["image_hash"] == sha(pets)
    # Identical bytes are inferred once: items 0 and 3 share one call.
    assert fake_llm.calls == 2
    assert sorted(item["from_cache"] for item in (items[0], items[3])) == [False, True]
    assert body["total_processing_time_ms"] >= 0
    assert len([r for r in rows if r.endpoint == "batch"]) == 4


async def test_batch_limits(make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM) -> None:
    settings = llm_settings(fake_llm, batch_max=2, max_upload_bytes=20_000)
    async with make_client(database_url=sqlite_url, **settings) as (_, client):
        images = [make_image(Category.pets, seed=30 + i) for i in range(3)]
        too_many = await client.post(
            "/api/v1/classify/batch",
            files=[("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)],
        )
        assert_error(too_many, 413, "batch_too_large")
        oversized = await client.post(
            "/api/v1/classify/batch",
            files=[
                ("images", ("big.jpg", b"\xff\xd8\xff" + b"1" * 30_000, "image/jpeg")),
                ("images", ("ok.jpg", images[0], "image/jpeg")),
            ],
        )
        assert oversized.status_code == 200
        assert [i["error_code"] for i in oversized.json()["items"]] == ["image_too_large", None]
        bad_hashes = await client.post(
            "/api/v1/classify/batch",
            files=[("images", ("ok.jpg", images[0], "image/jpeg"))],
            data={"image_hashes": "not json"},
        )
        assert_error(bad_hashes, 422, "invalid_hash")
        assert_error(await client.post("/api/v1/classify/batch", data={}), 400, "invalid_multipart")


async def test_fifty_concurrent_identical_uploads_call_the_llm_once(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    fake_llm.delay_s = 0.3
    image = make_image(Category.single_person, seed=40)
    async with make_client(database_url=database_url, **llm_settings(fake_llm)) as (app, client):
        responses = await asyncio.gather(*(upload(client, image) for _ in range(50)))
        rows = await log_rows(app)
    assert all(r.status_code == 200 for r in responses)
    assert {r.json()["data"]["category"] for r in responses} == {"single_person"}
    assert fake_llm.calls == 1
    assert sum(1 for r in rows if r.inference_method == "remote") == 1
    assert sum(1 for r in rows if r.inference_method == "cache") == 49


async def test_cache_poisoning_needs_a_quorum_of_uploaders(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    victim_hash = sha(b"a popular original photo")
    planted = make_image(Category.idcard, seed=50)
    async with make_client(
        database_url=database_url, client_host="10.0.0.1", **llm_settings(fake_llm)
    ) as (_, attacker):
        planted_response = await upload(attacker, planted, victim_hash)
        assert planted_response.json()["data"]["category"] == "idcard"
        # The uploader itself gets its own entry back.
        own = await attacker.post("/api/v1/classify/check-cache", json={"image_hash": victim_hash})
        assert own.json()["cached"] is True

    async with make_client(
        database_url=database_url, client_host="10.0.0.2", **llm_settings(fake_llm)
    ) as (app, second):
        # A second IP (whatever X-User-ID it sends) does not see the claimed entry.
        miss = await second.post(
            "/api/v1/classify/check-cache",
            json={"image_hash": victim_hash},
            headers={"X-User-ID": "device-of-attacker"},
        )
        assert miss.json()["cached"] is False
        honest = make_image(Category.travel_scenery, seed=51)
        second_upload = await upload(second, honest, victim_hash)
        assert second_upload.json()["data"]["category"] == "travel_scenery"
        assert second_upload.json()["from_cache"] is False
        row = await cache_row(app, victim_hash)
        assert row is not None
        assert row.shared is False

    async with make_client(
        database_url=database_url, client_host="10.0.0.3", **llm_settings(fake_llm)
    ) as (app, third):
        third_upload = await upload(
            third, make_image(Category.travel_scenery, seed=52), victim_hash
        )
        assert third_upload.json()["data"]["category"] == "travel_scenery"
        row = await cache_row(app, victim_hash)
        assert row is not None
        assert row.shared is True
        assert row.category == "travel_scenery"

    async with make_client(
        database_url=database_url, client_host="10.0.0.4", **llm_settings(fake_llm)
    ) as (_, anyone):
        shared = await anyone.post("/api/v1/classify/check-cache", json={"image_hash": victim_hash})
    assert shared.json()["data"]["category"] == "travel_scenery"
    assert fake_llm.calls == 3


async def test_rate_limit_answers_429_with_retry_after(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, rate_limit_check="3/minute") as (_, client):
        statuses = []
        for _ in range(4):
            response = await client.post(
                "/api/v1/classify/check-cache", json={"image_hash": "b" * 64}
            )
            statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 429]
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1


async def test_unknown_route_and_method_use_the_error_body(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        assert_error(await client.get("/api/v1/nope"), 404, "not_found")
        assert_error(await client.get("/api/v1/classify"), 405, "method_not_allowed")
