"""Statistics of DESIGN §4.2 equal what the test just did, on every configured database."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.fake_llm import COMPLETION_TOKENS, FakeLLM, prompt_tokens
from tests.fixtures.images import make_image
from tests.stats.conftest import ADMIN, admin_headers, insert_rows, log_row
from xintu.categories import Category
from xintu.config import DEFAULT_MODEL_PRICES
from xintu.inference.pricing import call_cost
from xintu.models import RequestLog, WechatUser

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The fake LLM counts tokens from the pixels it receives, as Qwen-VL does: the script's two
# remote calls are a 320×240 and a 64×48 picture.
CALL_TOKENS = prompt_tokens(320, 240) + prompt_tokens(64, 48)
CALLS_COST = float(
    call_cost(DEFAULT_MODEL_PRICES, "gpt-4o-mini", prompt_tokens(320, 240), COMPLETION_TOKENS)
    + call_cost(DEFAULT_MODEL_PRICES, "gpt-4o-mini", prompt_tokens(64, 48), COMPLETION_TOKENS)
)
# Saved cost = hits × the mean cost of a remote call.
SAVED_BY_4_HITS = 4 * CALLS_COST / 2


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(
    client: httpx.AsyncClient, data: bytes, image_hash: str | None, user: str
) -> httpx.Response:
    return await client.post(
        "/api/v1/classify",
        files={"image": ("photo.jpg", data, "image/jpeg")},
        data={"image_hash": image_hash} if image_hash else {},
        headers={"X-User-ID": user},
    )


async def check(client: httpx.AsyncClient, image_hash: str, user: str) -> bool:
    response = await client.post(
        "/api/v1/classify/check-cache", json={"image_hash": image_hash}, headers={"X-User-ID": user}
    )
    assert response.status_code == 200, response.text
    cached: bool = response.json()["cached"]
    return cached


async def stats(
    app: FastAPI, client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> dict:  # type: ignore[type-arg]
    await app.state.classification.writer.flush()
    response = await client.get(f"/api/v1/stats/{path}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    return body["data"]  # type: ignore[no-any-return]


async def play_script(client: httpx.AsyncClient, fake_llm: FakeLLM) -> tuple[bytes, bytes]:
    """Misses, uploads, hits, a local fallback and a failure from two callers."""
    image_a = make_image(Category.foods, seed=11, size=(320, 240))
    image_b = make_image(Category.pets, seed=12)
    image_c = make_image(Category.other, seed=13)
    assert not await check(client, sha(image_a), "device-1")  # miss: no row
    assert (await upload(client, image_a, sha(image_a), "device-1")).json()["data"][
        "inference_method"
    ] == "remote"
    assert await check(client, sha(image_a), "device-1")
    batch = await client.post(
        "/api/v1/classify/batch-check-cache",
        json={"image_hashes": [sha(image_a), sha(image_b)]},
        headers={"X-User-ID": "device-1"},
    )
    assert batch.json()["cached_count"] == 1
    assert (await upload(client, image_a, sha(image_a), "device-1")).json()["from_cache"] is True
    assert not await check(client, sha(image_b), "device-1")
    assert (await upload(client, image_b, None, "device-1")).json()["data"]["category"] == "pets"
    fake_llm.mode = "error500"
    local = await upload(client, image_c, None, "device-1")
    assert local.json()["data"]["inference_method"] == "local"
    fake_llm.mode = "ok"
    assert (await upload(client, b"not an image at all", None, "device-1")).status_code == 415
    assert await check(client, sha(image_a), "device-2")
    return image_a, image_b


@pytest.mark.usefixtures("with_local")
async def test_statistics_equal_a_scripted_mix_of_requests(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, **ADMIN)
    async with make_client(database_url=database_url, **settings) as (app, client):
        headers = await admin_headers(client)
        image_a, _ = await play_script(client, fake_llm)

        today = await stats(app, client, "today", headers)
        assert today | {"avg_processing_ms": 0, "p95_processing_ms": 0} == {
            "date": datetime.now(SHANGHAI).date().isoformat(),
            "total_requests": 8,
            "cache_hits": 4,
            "cache_hit_rate": 0.5,
            "remote_calls": 2,
            "local_calls": 1,
            "failed_requests": 1,
            "unique_users": 1,
            "avg_processing_ms": 0,
            "p95_processing_ms": 0,
            "cost": round(CALLS_COST, 6),
            "cost_saved": round(SAVED_BY_4_HITS, 6),
            "currency": "CNY",
        }

        efficiency = await stats(app, client, "cache-efficiency", headers)
        assert efficiency["days"] == 7
        assert len(efficiency["daily"]) == 7
        assert efficiency["daily"][-1] == {
            "date": today["date"],
            "total_requests": 8,
            "cache_hits": 4,
            "hit_rate": 0.5,
        }
        assert all(day["total_requests"] == 0 for day in efficiency["daily"][:-1])
        assert efficiency["uploads_avoided"] == 3
        assert efficiency["bandwidth_saved_bytes"] == 3 * len(image_a)
        assert efficiency["remote_calls_avoided"] == 4
        assert efficiency["cost_saved"] == round(SAVED_BY_4_HITS, 6)

        distribution = await stats(app, client, "category-distribution", headers)
        assert distribution["total"] == 7
        assert [c["category"] for c in distribution["categories"]] == [c.value for c in Category]
        by_category = {c["category"]: c for c in distribution["categories"]}
        assert by_category["foods"] == {
            "category": "foods",
            "category_name": "美食记录",
            "count": 5,
            "images": 1,
            "ratio": round(5 / 7, 4),
        }
        assert (by_category["pets"]["count"], by_category["single_person"]["count"]) == (1, 1)
        assert by_category["idcard"] == {
            "category": "idcard",
            "category_name": "证件照",
            "count": 0,
            "images": 0,
            "ratio": 0.0,
        }

        users = (await stats(app, client, "users/top", headers))["users"]
        assert [
            (u["user_id"], u["requests"], u["cache_hits"], u["remote_calls"]) for u in users
        ] == [("ip:127.0.0.1", 8, 4, 2)]  # two labels, one caller: labels identify nobody
        assert datetime.fromisoformat(users[0]["last_active"]).utcoffset() == timedelta(hours=8)

        costs = await stats(app, client, "costs", headers)
        assert costs["providers"] == [
            {
                "provider": "openai",
                "model": "gpt-4o-mini",
                "calls": 2,
                "input_tokens": CALL_TOKENS,
                "output_tokens": 2 * COMPLETION_TOKENS,
                "cost": round(CALLS_COST, 6),
                "cache_hits": 4,
                "cost_saved": round(SAVED_BY_4_HITS, 6),
                "input_price_per_1k": 0.0011,
                "output_price_per_1k": 0.0044,
            }
        ]
        assert (costs["total_calls"], costs["total_cost"], costs["cost_saved"]) == (
            2,
            round(CALLS_COST, 6),
            round(SAVED_BY_4_HITS, 6),
        )
        assert costs["daily"][-1]["cost"] == round(CALLS_COST, 6)

        performance = await stats(app, client, "performance", headers)
        methods = {m["inference_method"]: m for m in performance["methods"]}
        assert [m["inference_method"] for m in performance["methods"]] == [
            "cache",
            "remote",
            "local",
            "none",
        ]
        assert {name: (m["count"], m["success_rate"]) for name, m in methods.items()} == {
            "cache": (4, 1.0),
            "remote": (2, 1.0),
            "local": (1, 1.0),
            "none": (1, 0.0),
        }
        assert performance["total"] == 8
        assert performance["success_rate"] == 0.875

        # Latency figures agree with a nearest-rank computation over the rows themselves.
        async with app.state.db.sessionmaker() as session:
            rows = (await session.scalars(select(RequestLog))).all()
        served = sorted(r.processing_time_ms for r in rows if r.status_code < 400)
        assert today["p95_processing_ms"] == round(served[math.ceil(0.95 * len(served)) - 1], 2)
        assert today["avg_processing_ms"] == round(sum(served) / len(served), 2)
        cache_times = sorted(r.processing_time_ms for r in rows if r.inference_method == "cache")
        assert methods["cache"]["p50_ms"] == round(cache_times[1], 2)
        assert methods["cache"]["p99_ms"] == round(cache_times[3], 2)


async def test_days_follow_the_configured_time_zone_around_midnight(
    make_client: AppFactory, database_url: str
) -> None:
    local_today = datetime.now(SHANGHAI).date()
    midnight = datetime(local_today.year, local_today.month, local_today.day, tzinfo=SHANGHAI)
    one_us = timedelta(microseconds=1)
    async with make_client(database_url=database_url, **ADMIN) as (app, client):
        headers = await admin_headers(client)
        await insert_rows(
            app,
            [
                # Today in Shanghai although yesterday in UTC (16:00 UTC the day before).
                log_row(midnight),
                log_row(
                    midnight + timedelta(minutes=30), from_cache=True, inference_method="cache"
                ),
                # Yesterday, by one microsecond and by one day less one microsecond.
                log_row(midnight - one_us, from_cache=True, inference_method="cache"),
                log_row(midnight - timedelta(days=1)),
                # Two days ago: outside a 2-day window.
                log_row(midnight - timedelta(days=1) - one_us),
            ],
        )
        today = await stats(app, client, "today", headers)
        assert (today["date"], today["total_requests"], today["cache_hits"]) == (
            local_today.isoformat(),
            2,
            1,
        )
        efficiency = await stats(app, client, "cache-efficiency?days=2", headers)
        yesterday = (local_today - timedelta(days=1)).isoformat()
        assert efficiency["daily"] == [
            {"date": yesterday, "total_requests": 2, "cache_hits": 1, "hit_rate": 0.5},
            {
                "date": local_today.isoformat(),
                "total_requests": 2,
                "cache_hits": 1,
                "hit_rate": 0.5,
            },
        ]
        assert efficiency["total_requests"] == 4
        three = await stats(app, client, "cache-efficiency?days=3", headers)
        assert [day["total_requests"] for day in three["daily"]] == [1, 2, 2]


async def test_percentiles_are_nearest_rank_on_every_database(
    make_client: AppFactory, database_url: str
) -> None:
    now = datetime.now(UTC) - timedelta(minutes=5)
    async with make_client(database_url=database_url, **ADMIN) as (app, client):
        headers = await admin_headers(client)
        # 1…200 ms for remote (inserted shuffled), 7 ms once for local.
        times = [float(i) for i in range(1, 201)]
        times = times[::2] + times[1::2]
        await insert_rows(
            app,
            [log_row(now, processing_time_ms=t) for t in times]
            + [log_row(now, inference_method="local", provider="local", processing_time_ms=7.0)],
        )
        performance = await stats(app, client, "performance?hours=1", headers)
        methods = {m["inference_method"]: m for m in performance["methods"]}
        assert (methods["remote"]["p50_ms"], methods["remote"]["p95_ms"]) == (100.0, 190.0)
        assert methods["remote"]["p99_ms"] == 198.0
        assert (methods["local"]["p50_ms"], methods["local"]["p99_ms"]) == (7.0, 7.0)
        assert methods["cache"] | {"inference_method": None} == {
            "inference_method": None,
            "count": 0,
            "success_rate": 0.0,
            "avg_ms": 0.0,
            "p50_ms": 0.0,
            "p95_ms": 0.0,
            "p99_ms": 0.0,
        }
        today = await stats(app, client, "today", headers)
        if datetime.now(SHANGHAI).date() == now.astimezone(SHANGHAI).date():
            # 201 values: rank ceil(0.95 · 201) = 191 → the 191st smallest.
            assert today["p95_processing_ms"] == 190.0


async def test_top_users_names_app_users_and_falls_back_to_ip(
    make_client: AppFactory, database_url: str
) -> None:
    now = datetime.now(UTC) - timedelta(minutes=1)
    async with make_client(database_url=database_url, **ADMIN) as (app, client):
        headers = await admin_headers(client)
        async with app.state.db.sessionmaker() as session:
            user = WechatUser(openid="o-1", nickname="小明")
            session.add(user)
            await session.commit()
            user_id = user.id
        await insert_rows(
            app,
            [log_row(now, user_id=f"user:{user_id}") for _ in range(3)]
            + [log_row(now, user_id=None, ip_address="10.9.8.7") for _ in range(2)]
            + [log_row(now, user_id="device-z", cost=Decimal("0.5"))],
        )
        users = (await stats(app, client, "users/top?limit=2", headers))["users"]
        assert [(u["user_id"], u["nickname"], u["requests"]) for u in users] == [
            (f"user:{user_id}", "小明", 3),
            ("ip:10.9.8.7", None, 2),
        ]


async def test_statistics_validate_their_parameters(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, **ADMIN) as (_, client):
        headers = await admin_headers(client)
        for path in ("cache-efficiency?days=0", "users/top?limit=0", "performance?hours=x"):
            response = await client.get(f"/api/v1/stats/{path}", headers=headers)
            assert response.status_code == 422
            assert response.json()["code"] == "validation_error"


async def test_top_users_merge_a_label_with_the_same_anonymous_ip_and_break_ties_by_key(
    make_client: AppFactory, database_url: str
) -> None:
    local_today = datetime.now(SHANGHAI).date()
    midnight = datetime(local_today.year, local_today.month, local_today.day, tzinfo=SHANGHAI)
    second = timedelta(seconds=1)
    async with make_client(database_url=database_url, **ADMIN) as (app, client):
        headers = await admin_headers(client)
        await insert_rows(
            app,
            [
                log_row(midnight + second, user_id=None, ip_address="10.9.8.7"),
                log_row(
                    midnight,
                    user_id=None,
                    ip_address="10.9.8.7",
                    from_cache=True,
                    inference_method="cache",
                ),
                # A client label that reads like an anonymous caller is that caller.
                log_row(midnight + 3 * second, user_id="ip:10.9.8.7", inference_method="local"),
                log_row(midnight + 2 * second, user_id="device-b"),
                log_row(midnight, user_id="device-b", from_cache=True, inference_method="cache"),
                log_row(midnight + second, user_id="device-a"),
                log_row(midnight, user_id="device-a"),
                # Yesterday by one microsecond: outside a 1-day window.
                log_row(midnight - timedelta(microseconds=1), user_id="device-b"),
                log_row(midnight - timedelta(microseconds=1), user_id="device-c"),
            ],
        )
        users = (await stats(app, client, "users/top?days=1&limit=3", headers))["users"]
        assert [
            (u["user_id"], u["requests"], u["cache_hits"], u["remote_calls"], u["last_active"])
            for u in users
        ] == [
            ("ip:10.9.8.7", 3, 1, 1, (midnight + 3 * second).isoformat()),
            ("device-a", 2, 0, 2, (midnight + second).isoformat()),
            ("device-b", 2, 1, 1, (midnight + 2 * second).isoformat()),
        ]
        two_days = (await stats(app, client, "users/top?days=2&limit=10", headers))["users"]
        assert [(u["user_id"], u["requests"]) for u in two_days] == [
            ("device-b", 3),
            ("ip:10.9.8.7", 3),
            ("device-a", 2),
            ("device-c", 1),
        ]
