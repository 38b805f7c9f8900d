"""``GET /stats/stream``: Server-Sent Events read by a client from a real uvicorn server,
in one process and across two instances sharing Redis."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from tests.fixtures.live_server import serve
from tests.stats.conftest import ADMIN, admin_headers
from xintu.categories import Category
from xintu.config import Settings
from xintu.main import create_app
from xintu.models import ImageEditTask

Stats = dict[str, Any]


def live_settings(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        data_dir=tmp_path / "data",
        local_model_enabled=False,
        rate_limit_classify="0",
        rate_limit_check="0",
        log_level="WARNING",
        **ADMIN,
        **extra,
    )


async def stats_events(client: httpx.AsyncClient, headers: dict[str, str]) -> AsyncIterator[Stats]:
    """The ``stats`` events of the stream, parsed."""
    async with client.stream("GET", "/api/v1/stats/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event, data = "", ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif not line and event:
                assert event == "stats"
                yield json.loads(data)
                event, data = "", ""


async def first_matching(events: AsyncIterator[Stats], condition: Callable[[Stats], bool]) -> Stats:
    """The first event that satisfies ``condition``, within 15 s."""

    async def scan() -> Stats:
        async for stats in events:
            if condition(stats):
                return stats
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(scan(), timeout=15)


async def traffic(client: httpx.AsyncClient) -> None:
    """Six requests: two remote uploads, three cache hits, one refused upload."""
    images = [make_image(Category.pets, seed=1), make_image(Category.foods, seed=2)]
    for image in images:
        response = await client.post("/api/v1/classify", files={"image": ("a.jpg", image)})
        assert response.status_code == 200, response.text
    for image in (*images, images[0]):
        hit = await client.post(
            "/api/v1/classify/check-cache",
            json={"image_hash": hashlib.sha256(image).hexdigest()},
        )
        assert hit.json()["cached"] is True
    refused = await client.post("/api/v1/classify", files={"image": ("a.txt", b"not an image")})
    assert refused.status_code == 415


async def test_the_stream_is_for_admins_only(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url, **ADMIN) as (_, client):
        anonymous = await client.get("/api/v1/stats/stream")
        guest = await client.post("/api/v1/auth/guest", json={"device_id": "dev-1"})
        user = await client.get(
            "/api/v1/stats/stream",
            headers={"Authorization": f"Bearer {guest.json()['access_token']}"},
        )
    assert_error(anonymous, 401, "not_authenticated")
    assert_error(user, 403, "forbidden")


async def test_stats_events_follow_the_traffic_of_the_last_minute(
    sqlite_url: str, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    app = create_app(live_settings(sqlite_url, tmp_path, **llm_settings(fake_llm)))
    with serve(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
            headers = await admin_headers(client)
            events = stats_events(client, headers)
            quiet = await first_matching(events, lambda _: True)
            assert quiet["requests"] == 0
            assert quiet["hit_rate"] == 0.0
            assert quiet["window_s"] == 60
            assert len(quiet["per_second"]) == 60
            assert quiet["providers"] == [
                {
                    "name": "openai",
                    "circuit": "closed",
                    "instances": {"closed": 1, "open": 0, "half_open": 0},
                }
            ]
            assert quiet["instances"] == 1

            async with app.state.db.engine.begin() as connection:
                await connection.execute(
                    insert(ImageEditTask),
                    [
                        {
                            "id": f"task-{index}",
                            "user_id": 1,
                            "operation": "enhance",
                            "cache_key": "0" * 64,
                            "status": status,
                            "created_at": datetime.now(UTC),
                        }
                        for index, status in enumerate(["queued", "queued", "running"])
                    ],
                )
            await traffic(client)
            busy = await first_matching(events, lambda stats: stats["requests"] >= 6)
            await events.aclose()
    assert busy["requests"] == 6
    assert busy["cache_hits"] == 3
    assert busy["hit_rate"] == 0.5
    assert busy["errors"] == 1
    assert busy["requests_per_s"] == pytest.approx(0.1)
    assert sum(busy["per_second"]) == 6
    assert busy["p95_ms"] > 0
    assert busy["edit_queue_depth"] == 2


async def test_two_instances_add_up_through_redis(
    make_client: AppFactory, sqlite_url: str, redis_url: str, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    """Traffic on instance B and B's open circuit show in the stream of instance A."""
    settings = llm_settings(fake_llm, redis_url=redis_url)
    app = create_app(live_settings(sqlite_url, tmp_path, **settings))
    with serve(app) as base_url:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=20) as client,
            make_client(
                database_url=sqlite_url, circuit_failure_threshold=1, **ADMIN, **settings
            ) as (_, other),
        ):
            headers = await admin_headers(client)
            events = stats_events(client, headers)
            both = await first_matching(events, lambda stats: stats["instances"] == 2)
            assert both["requests"] == 0

            await traffic(other)
            fake_llm.mode = "error500"
            failed = await other.post(
                "/api/v1/classify", files={"image": ("b.jpg", make_image(seed=9))}
            )
            assert failed.status_code == 503
            summed = await first_matching(events, lambda stats: stats["requests"] >= 7)
            await events.aclose()
    assert summed["requests"] == 7
    assert summed["cache_hits"] == 3
    assert summed["errors"] == 2
    assert summed["providers"] == [
        {"name": "openai", "circuit": "open", "instances": {"closed": 1, "open": 1, "half_open": 0}}
    ]
