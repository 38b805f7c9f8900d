"""Request bodies are limited per route class while they are read (docs/RELIABILITY.md):
413 before the whole body is read, multipart parts and headers capped, a rate-limited
caller's batch refused before its body is read."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
from sqlalchemy import func, select

from tests.conftest import AppFactory
from tests.fixtures.assertions import assert_error
from xintu.models import PaymentRecord, RequestLog

CHUNK = 64 * 1024


class Body:
    """A streamed request body that counts how much of it the server pulled."""

    def __init__(self, first: bytes, filler: bytes, total_bytes: int) -> None:
        self.first = first
        self.filler = filler
        self.total_bytes = total_bytes
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk = self.first
        while self.sent < self.total_bytes:
            self.sent += len(chunk)
            yield chunk
            chunk = self.filler


async def test_huge_json_body_is_413_after_the_limit_not_the_whole_body(
    make_client: AppFactory, sqlite_url: str
) -> None:
    huge = 300 * 1024 * 1024
    async with make_client(database_url=sqlite_url) as (app, client):
        for path in ("/api/v1/classify/batch-check-cache", "/api/v1/geo/locate/batch"):
            body = Body(b'{"image_hashes": ["' + b"a" * (CHUNK - 19), b"a" * CHUNK, huge)
            response = await client.post(
                path, content=body, headers={"Content-Type": "application/json"}
            )
            assert_error(response, 413, "payload_too_large")
            # 1 MiB limit: the server stopped after about 17 chunks of 64 KiB.
            assert body.sent <= 2 * 1024 * 1024
        # A declared length over the limit is refused before any of the body is read.
        body = Body(b"{", b" " * CHUNK, huge)
        response = await client.post(
            "/api/v1/auth/guest",
            content=body,
            headers={"Content-Type": "application/json", "Content-Length": str(huge)},
        )
        assert_error(response, 413, "payload_too_large")
        assert body.sent <= CHUNK
        # The service answers as before.
        assert (await client.get("/api/v1/categories")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'route="/api/v1/classify/batch-check-cache",status="413"' in metrics
        await app.state.classification.writer.flush()
        async with app.state.db.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(RequestLog)) == 0


async def test_payment_callback_is_capped_before_it_is_read(
    make_client: AppFactory, database_url: str
) -> None:
    async with make_client(database_url=database_url) as (app, client):
        body = Body(b'{"id": "', b"x" * CHUNK, 300 * 1024 * 1024)
        response = await client.post(
            "/api/v1/billing/wechatpay/notify",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json() == {"code": "FAIL", "message": "body too large"}
        assert body.sent <= 2 * CHUNK
        declared = Body(b"{", b"x" * CHUNK, 10 * 1024 * 1024)
        response = await client.post(
            "/api/v1/billing/wechatpay/notify",
            content=declared,
            headers={"Content-Type": "application/json", "Content-Length": str(10 * 1024 * 1024)},
        )
        assert response.status_code == 413
        assert declared.sent <= CHUNK
        async with app.state.db.sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(PaymentRecord)) == 0


def tiny_fields(boundary: str, count: int) -> bytes:
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'.encode()
    return part * count


async def test_many_tiny_multipart_fields_are_refused_at_the_first_chunk(
    make_client: AppFactory, sqlite_url: str
) -> None:
    boundary = "xintutestboundary"
    content_type = f"multipart/form-data; boundary={boundary}"
    chunk = tiny_fields(boundary, 1000)
    async with make_client(database_url=sqlite_url) as (_, client):
        for path in (
            "/api/v1/classify",
            "/api/v1/classify/batch",
            "/api/v1/local-classify",
            "/api/v1/geo/locate",
        ):
            # 60 MiB of tiny fields, as many as the batch body limit lets through.
            body = Body(chunk, chunk, 60 * 1024 * 1024)
            response = await client.post(path, content=body, headers={"Content-Type": content_type})
            assert_error(response, 400, "invalid_multipart")
            assert "parts" in response.json()["detail"]
            assert body.sent == len(chunk)


async def test_oversized_part_headers_are_refused(make_client: AppFactory, sqlite_url: str) -> None:
    boundary = "xintutestboundary"
    header = "x" * (8 * 1024)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{header}"\r\n'
        f"Content-Type: image/jpeg\r\n\r\nabc\r\n--{boundary}--\r\n"
    ).encode()
    async with make_client(database_url=sqlite_url) as (_, client):
        response = await client.post(
            "/api/v1/classify/batch",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert_error(response, 400, "invalid_multipart")
    assert "header" in response.json()["detail"]


async def test_rate_limited_caller_batch_is_refused_before_its_body_is_read(
    make_client: AppFactory, sqlite_url: str
) -> None:
    boundary = "xintutestboundary"
    image = b"\xff\xd8\xff" + b"0" * 1000
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    async with make_client(database_url=sqlite_url, rate_limit_classify="1/minute") as (_, client):
        first = await client.post(
            "/api/v1/classify/batch",
            content=part + image + f"\r\n--{boundary}--\r\n".encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert first.status_code == 200, first.text
        body = Body(part, b"0" * CHUNK, 100 * 1024 * 1024)
        response = await client.post(
            "/api/v1/classify/batch",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert_error(response, 429, "rate_limited")
        assert body.sent == 0


async def test_upload_routes_keep_their_own_codes_for_a_declared_oversized_body(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, max_upload_bytes=1024 * 1024) as (_, client):
        image = Body(b"\xff\xd8\xff", b"0" * CHUNK, 50 * 1024 * 1024)
        response = await client.post(
            "/api/v1/classify",
            content=image,
            headers={
                "Content-Type": "image/jpeg",
                "X-Image-Hash": hashlib.sha256(b"x").hexdigest(),
            },
        )
        assert_error(response, 413, "image_too_large")
        assert image.sent <= 2 * 1024 * 1024
        declared = Body(b"--b\r\n", b"0" * CHUNK, 500 * 1024 * 1024)
        response = await client.post(
            "/api/v1/classify/batch",
            content=declared,
            headers={
                "Content-Type": "multipart/form-data; boundary=b",
                "Content-Length": str(500 * 1024 * 1024),
            },
        )
        assert_error(response, 413, "batch_too_large")
        assert declared.sent == 0


async def test_a_normal_json_body_under_the_limit_is_served(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        response = await client.post(
            "/api/v1/classify/batch-check-cache", json={"image_hashes": ["a" * 64] * 1000}
        )
        assert response.status_code == 200, response.text
        assert isinstance(response, httpx.Response)
