"""A client that disconnects mid-upload leaves no temporary file behind (real uvicorn)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.live_server import serve
from xintu.config import Settings
from xintu.main import create_app

MAX_VIDEO_BYTES = 10 * 1024 * 1024
BOUNDARY = "xintu-disconnect"
HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="video"; '
    'filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
).encode()


def _request_head(length: int) -> bytes:
    return (
        "POST /api/v1/classify/video HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    tmp_dir = tmp_path / "video-tmp"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=sqlite_url,
        data_dir=tmp_path / "data",
        local_model_enabled=False,
        log_level="WARNING",
        video_tmp_dir=tmp_dir,
        max_video_bytes=MAX_VIDEO_BYTES,
    )
    with serve(create_app(settings)) as base_url:
        yield int(base_url.rsplit(":", 1)[1]), tmp_dir


async def _wait_for(condition: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.02)


async def test_a_client_that_disconnects_mid_upload_leaves_no_file(
    server: tuple[int, Path],
) -> None:
    port, tmp_dir = server
    video_start = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 200_000
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # 5 MB announced, 200 kB sent
    writer.write(_request_head(5 * 1024 * 1024) + HEAD + video_start)
    await writer.drain()

    def files() -> list[str]:
        return os.listdir(tmp_dir) if tmp_dir.exists() else []

    await _wait_for(lambda: len(files()) == 1, "the upload never reached a temp file")
    writer.close()  # gone mid-upload
    await writer.wait_closed()
    await _wait_for(lambda: files() == [], "the temp file outlived the disconnect")
    del reader


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    server: tuple[int, Path],
) -> None:
    port, tmp_dir = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(_request_head(MAX_VIDEO_BYTES * 2))  # headers only, no body
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()
    await writer.wait_closed()
    assert status_line.startswith(b"HTTP/1.1 413")
    assert not tmp_dir.exists() or os.listdir(tmp_dir) == []
