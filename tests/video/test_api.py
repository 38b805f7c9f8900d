"""``POST /classify/video`` over HTTP (DESIGN §4.9): generated videos, the fake LLM, the
local stand-in, real databases; the temporary file is gone after every outcome."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.conftest import AppFactory, llm_settings
from tests.fixtures.assertions import assert_error
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from tests.fixtures.local_stand_in import StandInLocal
from tests.video.media import make_video
from xintu.categories import Category
from xintu.models import ImageClassificationCache, RequestLog

# Six seconds of a pet, then two of food: four frames spread evenly see three pets and one
# food, the scene change at 6 s adds a second food frame.
SCENES = [(Category.pets, 6.0), (Category.foods, 2.0)]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def video() -> bytes:
    return make_video(SCENES)


def video_settings(fake: FakeLLM, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return llm_settings(fake, video_tmp_dir=tmp_path / "video-tmp", **extra)


def leftovers(tmp_path: Path) -> list[str]:
    directory = tmp_path / "video-tmp"
    return sorted(os.listdir(directory)) if directory.exists() else []


async def post_video(
    client: httpx.AsyncClient,
    data: bytes,
    video_hash: str | None = None,
    filename: str = "clip.mp4",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.post(
        "/api/v1/classify/video",
        files={"video": (filename, data, "video/mp4")},
        data={"video_hash": video_hash} if video_hash else {},
        headers=headers or {},
    )


async def log_rows(app: FastAPI) -> list[RequestLog]:
    await app.state.classification.writer.flush()
    async with app.state.db.sessionmaker() as session:
        return list((await session.scalars(select(RequestLog).order_by(RequestLog.id))).all())


async def cache_count(app: FastAPI) -> int:
    async with app.state.db.sessionmaker() as session:
        return int(await session.scalar(select(func.count(ImageClassificationCache.id))) or 0)


async def test_video_is_classified_by_keyframes_then_answered_from_the_cache(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM, tmp_path: Path, video: bytes
) -> None:
    video_hash = sha(video)
    settings = video_settings(fake_llm, tmp_path)
    async with make_client(database_url=database_url, **settings) as (app, client):
        first = await post_video(client, video, headers={"X-User-ID": "phone-1"})
        assert first.status_code == 200, first.text
        body = first.json()
        data = body["data"]
        assert body["success"] is True
        assert body["from_cache"] is False
        assert first.headers["x-request-id"] == body["request_id"]
        assert data["image_hash"] == video_hash
        assert data["category"] == "pets"
        assert data["category_name"] == "宠物萌照"
        assert data["inference_method"] == "remote"
        assert data["model"] == "gpt-4o-mini"
        assert data["duration_s"] == pytest.approx(8.0, abs=0.2)
        frames = data["frames"]
        times = [frame["t"] for frame in frames]
        assert times == sorted(times)
        # four spread over the duration, plus the cut to food at 6 s
        assert [round(t) for t in times] == [1, 3, 5, 6, 7]
        assert [frame["category"] for frame in frames] == ["pets"] * 3 + ["foods"] * 2
        assert all(len(frame["image_hash"]) == 64 for frame in frames)
        # confidence-weighted vote: three of five frames at 0.93
        assert data["confidence"] == pytest.approx(3 * 0.93 / 5, abs=1e-3)
        # identical frames share one inference (single flight, then the cache)
        calls = fake_llm.calls
        assert calls == len({frame["image_hash"] for frame in frames}) >= 2

        again = await post_video(client, video)
        assert again.status_code == 200
        assert again.json()["from_cache"] is True
        assert again.json()["data"] == data | {"inference_method": "cache"}
        assert fake_llm.calls == calls

        # check-cache answers the video's hash like an image's, without an upload
        hit = await client.post("/api/v1/classify/check-cache", json={"image_hash": video_hash})
        assert hit.json()["cached"] is True
        assert hit.json()["data"]["category"] == "pets"
        assert hit.json()["data"]["frames"] == frames
        batch = await client.post(
            "/api/v1/classify/batch-check-cache",
            json={"image_hashes": ["0" * 64, video_hash, frames[0]["image_hash"]]},
        )
        assert [item["cached"] for item in batch.json()["items"]] == [False, True, True]
        assert batch.json()["items"][1]["data"]["duration_s"] == data["duration_s"]

        rows = await log_rows(app)
        async with app.state.db.sessionmaker() as session:
            entry = await session.scalar(
                select(ImageClassificationCache).where(
                    ImageClassificationCache.image_hash == video_hash
                )
            )
    assert entry is not None
    assert entry.shared
    assert entry.size_bytes == len(video)
    assert entry.video_details is not None
    # One row per classified frame, then one per cache hit: video, check-cache, batch (2).
    video_rows = [row for row in rows if row.endpoint == "video"]
    assert len(video_rows) == len(frames) + 1
    assert sum(row.inference_method == "remote" for row in video_rows) == calls
    assert video_rows[-1].image_hash == video_hash
    assert video_rows[-1].from_cache
    assert video_rows[0].client_label == "phone-1"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("container", "filename"), [("mov", "clip.mov"), ("3gp", "clip.3gp"), ("webm", "clip.webm")]
)
async def test_mov_3gp_and_webm_are_accepted(
    make_client: AppFactory,
    sqlite_url: str,
    fake_llm: FakeLLM,
    tmp_path: Path,
    container: str,
    filename: str,
) -> None:
    data = make_video([(Category.travel_scenery, 2.0)], container=container)
    async with make_client(database_url=sqlite_url, **video_settings(fake_llm, tmp_path)) as (
        _,
        client,
    ):
        response = await post_video(client, data, filename=filename)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["category"] == "travel_scenery"
    assert leftovers(tmp_path) == []


async def test_a_claimed_video_hash_is_not_shared_before_the_quorum(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM, tmp_path: Path, video: bytes
) -> None:
    """A client cannot plant an answer for another video's hash: its claim is its own."""
    victim_hash = sha(b"someone else's holiday video")
    settings = video_settings(fake_llm, tmp_path)
    async with make_client(database_url=database_url, **settings) as (_, client):
        planted = await post_video(client, video, video_hash=victim_hash.upper())
        assert planted.status_code == 200
        assert planted.json()["data"]["image_hash"] == victim_hash
        own = await client.post("/api/v1/classify/check-cache", json={"image_hash": victim_hash})
        assert own.json()["cached"] is True
    async with make_client(database_url=database_url, client_host="10.9.9.9", **settings) as (
        _,
        client,
    ):
        other = await client.post("/api/v1/classify/check-cache", json={"image_hash": victim_hash})
    assert other.json()["cached"] is False


async def test_local_fallback_answers_but_the_video_is_not_cached(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM, tmp_path: Path, video: bytes
) -> None:
    fake_llm.mode = "error500"
    local = StandInLocal(Category.other)
    settings = video_settings(fake_llm, tmp_path)
    async with make_client(database_url=database_url, local=local, **settings) as (app, client):
        response = await post_video(client, video)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert data["inference_method"] == "local"
        assert data["category"] == "other"
        assert {frame["category"] for frame in data["frames"]} == {"other"}
        assert local.calls == len({frame["image_hash"] for frame in data["frames"]})
        assert await cache_count(app) == 0

        # Answered again by the fallback's recent single flight (5 s): still not cached.
        fake_llm.mode = "ok"
        retry = await post_video(client, video)
        assert retry.json()["from_cache"] is False
        assert await cache_count(app) == 0
    assert leftovers(tmp_path) == []


async def test_no_classifier_is_503_and_nothing_is_cached(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM, tmp_path: Path, video: bytes
) -> None:
    fake_llm.mode = "error500"
    async with make_client(database_url=sqlite_url, **video_settings(fake_llm, tmp_path)) as (
        app,
        client,
    ):
        response = await post_video(client, video)
        assert_error(response, 503, "no_classifier_available")
        assert await cache_count(app) == 0
    assert leftovers(tmp_path) == []


def _without_frames(video: bytes) -> bytes:
    """The same MP4 with its media data zeroed: the container parses, no frame decodes."""
    start = video.index(b"mdat") - 4
    size = int.from_bytes(video[start : start + 4], "big")
    return video[: start + 8] + bytes(size - 8) + video[start + size :]


async def test_bad_videos_get_clear_errors_and_change_nothing(
    make_client: AppFactory, database_url: str, fake_llm: FakeLLM, tmp_path: Path, video: bytes
) -> None:
    hour_long = make_video([(Category.pets, 700.0)], fps=1, size=(16, 16))
    cases: list[tuple[str, bytes, int, str]] = [
        ("photo.jpg", make_image(Category.pets), 415, "unsupported_media_type"),
        (
            "photo.heic",
            make_image(Category.pets, image_format="HEIF"),
            415,
            "unsupported_media_type",
        ),
        ("notes.txt", b"just some text, certainly not a video" * 10, 415, "unsupported_media_type"),
        ("cut.mp4", video[: len(video) // 2], 400, "invalid_video"),
        ("garbage.mp4", video[:32] + os.urandom(4000), 400, "invalid_video"),
        ("empty.mp4", _without_frames(video), 400, "invalid_video"),
        ("long.mp4", hour_long, 422, "video_too_long"),
    ]
    settings = video_settings(fake_llm, tmp_path)
    async with make_client(database_url=database_url, **settings) as (app, client):
        for filename, data, status, code in cases:
            response = await post_video(client, data, filename=filename)
            assert_error(response, status, code)
            assert leftovers(tmp_path) == [], filename

        no_video = await client.post(
            "/api/v1/classify/video", files={"image": ("a.mp4", video, "video/mp4")}
        )
        assert_error(no_video, 422, "missing_video")
        bad_hash = await post_video(client, video, video_hash="not-a-hash")
        assert_error(bad_hash, 422, "invalid_hash")
        not_multipart = await client.post(
            "/api/v1/classify/video", content=video, headers={"Content-Type": "video/mp4"}
        )
        assert_error(not_multipart, 415, "unsupported_media_type")
        assert await cache_count(app) == 0
        rows = await log_rows(app)
    assert fake_llm.calls == 0
    # every refusal is one failed request row, nothing else
    assert [row.status_code for row in rows] == [415, 415, 415, 400, 400, 400, 422, 422, 422, 415]
    assert {row.endpoint for row in rows} == {"video"}
    assert leftovers(tmp_path) == []


async def test_a_too_long_video_under_a_small_limit_is_422(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM, tmp_path: Path, video: bytes
) -> None:
    settings = video_settings(fake_llm, tmp_path, max_video_seconds=5)
    async with make_client(database_url=sqlite_url, **settings) as (_, client):
        response = await post_video(client, video)
    assert_error(response, 422, "video_too_long")
    assert fake_llm.calls == 0
    assert leftovers(tmp_path) == []


class StreamedVideo:
    """A multipart body sent in chunks that records, between chunks, the temp files the
    server holds and their permissions."""

    def __init__(self, video: bytes, tmp_dir: Path, repeat: int = 1) -> None:
        self.boundary = "xintu-test-boundary"
        self.video = video
        self.tmp_dir = tmp_dir
        self.repeat = repeat
        self.sent = 0
        self.modes: list[int] = []

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="video"; '
            'filename="clip.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
        ).encode()
        for _ in range(self.repeat):
            for start in range(0, len(self.video), 4096):
                yield self.video[start : start + 4096]
                self.sent += 1
                if self.tmp_dir.exists():
                    for name in os.listdir(self.tmp_dir):
                        self.modes.append(stat.S_IMODE((self.tmp_dir / name).stat().st_mode))
        yield f"\r\n--{self.boundary}--\r\n".encode()


async def test_the_video_is_in_a_private_temp_file_only_while_it_is_read_and_decoded(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM, tmp_path: Path, video: bytes
) -> None:
    body = StreamedVideo(video, tmp_path / "video-tmp")
    async with make_client(database_url=sqlite_url, **video_settings(fake_llm, tmp_path)) as (
        _,
        client,
    ):
        response = await client.post(
            "/api/v1/classify/video", content=body, headers={"Content-Type": body.content_type}
        )
    assert response.status_code == 200, response.text
    assert body.modes
    assert set(body.modes) == {0o600}
    assert leftovers(tmp_path) == []


async def test_an_oversized_video_is_refused_while_reading(
    make_client: AppFactory, sqlite_url: str, fake_llm: FakeLLM, tmp_path: Path, video: bytes
) -> None:
    limit = 3 * len(video)
    body = StreamedVideo(video, tmp_path / "video-tmp", repeat=1000)
    settings = video_settings(fake_llm, tmp_path, max_video_bytes=limit)
    async with make_client(database_url=sqlite_url, **settings) as (_, client):
        streamed = await client.post(
            "/api/v1/classify/video", content=body, headers={"Content-Type": body.content_type}
        )
    assert_error(streamed, 413, "video_too_large")
    # stopped a few chunks past the limit, not after the 1,000 copies
    assert body.sent * 4096 <= limit + 3 * 4096
    assert fake_llm.calls == 0
    assert leftovers(tmp_path) == []


async def test_a_video_answer_reaches_another_instance_through_redis(
    make_client: AppFactory,
    sqlite_url: str,
    redis_url: str,
    fake_llm: FakeLLM,
    tmp_path: Path,
    video: bytes,
) -> None:
    settings = video_settings(fake_llm, tmp_path, redis_url=redis_url)
    async with (
        make_client(database_url=sqlite_url, **settings) as (_, first),
        make_client(database_url=sqlite_url, client_host="10.1.1.1", **settings) as (_, second),
    ):
        classified = await post_video(first, video)
        assert classified.status_code == 200
        checked = await second.post("/api/v1/classify/check-cache", json={"image_hash": sha(video)})
        again = await post_video(second, video)
    assert checked.json()["data"]["frames"] == classified.json()["data"]["frames"]
    assert again.json()["from_cache"] is True
    assert again.json()["data"]["duration_s"] == classified.json()["data"]["duration_s"]
