"""Upload limits are enforced while reading: an oversized body is never buffered."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tests.conftest import AppFactory
from tests.fixtures.assertions import assert_error

CHUNK = b"\xff\xd8\xff" + b"\0" * (1024 * 1024 - 3)


class CountingBody:
    """A 1 GB streamed body that counts how much of it the server pulled."""

    def __init__(self, prefix: bytes = b"", total_chunks: int = 1024) -> None:
        self.prefix = prefix
        self.total_chunks = total_chunks
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.prefix:
            yield self.prefix
        for _ in range(self.total_chunks):
            self.sent += 1
            yield CHUNK


async def test_a_1gb_raw_body_is_refused_after_the_limit(
    make_client: AppFactory, sqlite_url: str
) -> None:
    body = CountingBody()
    async with make_client(database_url=sqlite_url, max_upload_bytes=2 * 1024 * 1024) as (_, c):
        response = await c.post(
            "/api/v1/classify", content=body, headers={"Content-Type": "image/jpeg"}
        )
    assert_error(response, 413, "image_too_large")
    assert body.sent <= 4


async def test_a_1gb_multipart_body_is_refused_after_the_limit(
    make_client: AppFactory, sqlite_url: str
) -> None:
    boundary = "b0undary"
    prefix = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    body = CountingBody(prefix)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with make_client(database_url=sqlite_url, max_upload_bytes=2 * 1024 * 1024) as (_, c):
        single = await c.post("/api/v1/classify", content=body, headers=headers)
        assert_error(single, 413, "image_too_large")
        assert body.sent <= 4
        batch_body = CountingBody(prefix.replace(b'name="image"', b'name="images"'))
        batch = await c.post("/api/v1/classify/batch", content=batch_body, headers=headers)
    # A batch may carry BATCH_MAX files of the limit each, then it is refused too.
    assert_error(batch, 413, "batch_too_large")
    assert batch_body.sent <= 20 * 2 + 3


async def test_declared_content_length_over_the_limit_is_refused_unread(
    make_client: AppFactory, sqlite_url: str
) -> None:
    async with make_client(database_url=sqlite_url, max_upload_bytes=1000) as (_, client):
        response = await client.post(
            "/api/v1/classify",
            content=b"\xff\xd8\xff" + b"0" * 5000,
            headers={"Content-Type": "image/jpeg"},
        )
    assert_error(response, 413, "image_too_large")


async def test_malformed_multipart_is_400(make_client: AppFactory, sqlite_url: str) -> None:
    async with make_client(database_url=sqlite_url) as (_, client):
        no_boundary = await client.post(
            "/api/v1/classify", content=b"xx", headers={"Content-Type": "multipart/form-data"}
        )
        garbage = await client.post(
            "/api/v1/classify",
            content=b"--zz\r\nnot a header line\r\n\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=zz"},
        )
    assert_error(no_boundary, 400, "invalid_multipart")
    assert garbage.status_code in (400, 422)
    assert garbage.json()["success"] is False
