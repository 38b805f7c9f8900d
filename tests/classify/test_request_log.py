"""One bad request never stops the request log, and no served classification goes unlogged
(docs/RELIABILITY.md, "Request log"): labels checked at the edge, rows the database refuses
set aside alone, backpressure when the writer falls behind."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from tests.stats.conftest import ADMIN, admin_headers, log_row
from xintu.categories import Category
from xintu.classify.writer import WriteBehind
from xintu.db import Database
from xintu.models import RequestLog
from xintu.models.base import utcnow


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def seed_cache(client: httpx.AsyncClient, count: int) -> list[str]:
    """Classify ``count`` images remotely; the server hashes them, so they are shared."""
    hashes = []
    for seed in range(count):
        image = make_image(Category.pets, seed=100 + seed)
        response = await client.post(
            "/api/v1/classify", files={"image": ("p.jpg", image, "image/jpeg")}
        )
        assert response.status_code == 200, response.text
        hashes.append(sha(image))
    return hashes


async def logged(app: FastAPI) -> list[RequestLog]:
    await app.state.classification.writer.flush()
    async with app.state.db.sessionmaker() as session:
        return list((await session.scalars(select(RequestLog).order_by(RequestLog.id))).all())


async def today_total(app: FastAPI, client: httpx.AsyncClient) -> int:
    await app.state.classification.writer.flush()
    response = await client.get("/api/v1/stats/today", headers=await admin_headers(client))
    assert response.status_code == 200, response.text
    total: int = response.json()["data"]["total_requests"]
    return total


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_labels_no_database_can_store_are_422_and_later_requests_are_counted(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, **ADMIN)
    async with make_client(database_url=database_url, **settings) as (app, client):
        (image_hash,) = await seed_cache(client, 1)
        for label in ("\ud800", "a\u0000b", "tab\there", "x" * 129):
            body = orjson.dumps({"image_hash": image_hash}).replace(
                b"}", b',"user_id":' + _json_string(label) + b"}"
            )
            for path in ("check-cache", "batch-check-cache"):
                payload = body
                if path == "batch-check-cache":
                    payload = body.replace(b'"image_hash":', b'"image_hashes":[').replace(
                        b',"user_id"', b'],"user_id"'
                    )
                response = await client.post(
                    f"/api/v1/classify/{path}",
                    content=payload,
                    headers={"Content-Type": "application/json"},
                )
                assert_error(response, 422, "validation_error")
        for header in (b"a\x00b", b"\x01", b"\xff\xfe", b"y" * 129):
            response = await client.post(
                "/api/v1/classify/check-cache",
                json={"image_hash": image_hash},
                headers=[(b"X-User-ID", header)],
            )
            assert_error(response, 422, "validation_error")
        # Nothing was served to the bad requests; good ones keep being counted.
        assert await today_total(app, client) == 1
        good = await client.post(
            "/api/v1/classify/check-cache",
            json={"image_hash": image_hash, "user_id": "设备-1"},
        )
        assert good.json()["cached"] is True
        header = await client.post(
            "/api/v1/classify/check-cache",
            json={"image_hash": image_hash},
            headers=[(b"X-User-ID", "手机 2".encode())],
        )
        assert header.json()["cached"] is True
        assert await today_total(app, client) == 3
        # Labels are kept apart from user ids (docs/SECURITY.md, "Statistics").
        assert [row.client_label for row in await logged(app)] == [None, "设备-1", "手机 2"]


def _json_string(value: str) -> bytes:
    """A JSON string literal with every non-ASCII character escaped (lone surrogates too)."""
    escaped = "".join(
        char if 0x20 <= ord(char) < 0x7F and char not in '"\\' else f"\\u{ord(char):04x}"
        for char in value
    )
    return f'"{escaped}"'.encode()


async def test_a_row_the_database_refuses_is_set_aside_and_the_rest_written(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, **ADMIN)
    async with make_client(database_url=database_url, **settings) as (app, client):
        hashes = await seed_cache(client, 3)
        writer = app.state.classification.writer
        # A row no database stores (a lone surrogate cannot be encoded as UTF-8), logged
        # between good ones in the same batch.
        writer.log(log_row(utcnow(), request_id="bad-row", user_id="\ud800"))
        response = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": hashes}
        )
        assert response.json()["cached_count"] == 3
        rows = await logged(app)
        assert [row.request_id for row in rows].count("bad-row") == 0
        assert len(rows) == 6
        # The log keeps going: later requests are written and counted.
        for image_hash in hashes:
            await client.post("/api/v1/classify/check-cache", json={"image_hash": image_hash})
        assert await today_total(app, client) == 9
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "xintu_request_log_rows_set_aside_total") == 1
        assert metric(metrics, "xintu_request_log_backlog_rows") == 0
        assert metric(metrics, "xintu_request_log_rows_written_total") == 9


async def test_requests_wait_for_a_full_backlog_and_every_hit_is_logged(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, log_max_backlog=5)
    async with make_client(database_url=database_url, **settings) as (app, client):
        hashes = await seed_cache(client, 4)
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/classify/batch-check-cache", json={"image_hashes": hashes})
                for _ in range(20)
            )
        )
        served = sum(response.json()["cached_count"] for response in responses)
        assert served == 80
        rows = await logged(app)
        assert sum(1 for row in rows if row.endpoint == "batch-check-cache") == served
        metrics = (await client.get("/metrics")).text
        assert metric(metrics, "xintu_request_log_backpressure_waits_total") > 0
        assert metric(metrics, "xintu_request_log_rows_dropped_total") == 0


async def test_a_writer_that_cannot_keep_up_sheds_load_with_503_and_logs_what_it_served(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM
) -> None:
    settings = llm_settings(fake_llm, log_max_backlog=5, log_backpressure_timeout_s=0.3)
    async with make_client(database_url=sqlite_url, **settings) as (app, client):
        hashes = await seed_cache(client, 3)
        await app.state.classification.writer.flush()
        # Another process holds SQLite's write lock: the writer's next batch waits for it.
        blocker = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            first = await client.post(
                "/api/v1/classify/batch-check-cache", json={"image_hashes": hashes}
            )
            assert first.json()["cached_count"] == 3
            second = await client.post(
                "/api/v1/classify/batch-check-cache", json={"image_hashes": hashes}
            )
            assert_error(second, 503, "overloaded")
            assert second.headers["retry-after"] == "1"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        third = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": hashes}
        )
        assert third.json()["cached_count"] == 3
        rows = await logged(app)
        # Served: 3 uploads and two batches of 3; the refused batch left no row.
        assert len(rows) == 9


async def test_rows_are_kept_and_nothing_set_aside_while_the_database_is_unreachable() -> None:
    # Nothing listens on port 1: every connection is refused, as when the server is down.
    database = Database("postgresql+asyncpg://postgres@127.0.0.1:1/xintu")
    writer = WriteBehind(database, flush_interval_s=60, max_backlog=2)
    try:
        # Even a row no database accepts is kept: while none answers, nothing can be decided.
        writer.log(log_row(utcnow(), user_id="\ud800"))
        writer.log(log_row(utcnow()))
        await writer.flush()
        assert writer.backlog == 2
        assert writer.rows_set_aside == 0
        assert writer.database_up is False
        # Waiting for room would not help during an outage: no backpressure.
        await asyncio.wait_for(writer.reserve(10), timeout=1)
    finally:
        await database.dispose()
