"""``xintu classify`` against a real server with the fake LLM: sorting, the cache, resuming,
organizing, retries."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.clients.conftest import LiveServer, PhotoFolder, build_folder
from tests.fixtures.fake_llm import FakeLLM
from xintu.categories import CATEGORY_NAMES, Category
from xintu.clients.folder import (
    ApiClient,
    ClientError,
    Options,
    OrganizeMode,
    Report,
    StateFile,
    classify_paths,
    compress_for_upload,
    load_local_classifier,
    organize,
)

BATCH = "/api/v1/classify/batch"
CHECK = "/api/v1/classify/batch-check-cache"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def folder(tmp_path: Path) -> PhotoFolder:
    """200 files: 170 photos, 20 duplicates, 9 non-images and a corrupt JPEG."""
    return build_folder(tmp_path / "photos", photos=170, duplicates=20, non_images=9)


def options(server: LiveServer, state: Path, **extra: object) -> Options:
    return Options(server=server.url, state_path=state, workers=2, **extra)  # type: ignore[arg-type]


def assert_categories(report: Report, folder: PhotoFolder) -> None:
    by_path = {photo.path: report.outcomes[photo.image_hash] for photo in report.files}
    for path, category in folder.expected.items():
        assert by_path[path].category == category.value, path
        assert by_path[path].category_name == CATEGORY_NAMES[category]


async def test_classify_uploads_each_distinct_photo_once(
    live_server: LiveServer, folder: PhotoFolder, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    report = await classify_paths([folder.root], options(live_server, tmp_path / "s.jsonl"))

    assert len(folder.expected) + len(folder.non_images) + len(folder.corrupt) == 200
    assert_categories(report, folder)
    assert {p.resolve() for p in report.skipped} == {p.resolve() for p in folder.non_images}
    broken = next(photo for photo in report.files if photo.path == folder.corrupt[0])
    assert report.outcomes[broken.image_hash].error_code == "invalid_image"
    distinct = folder.distinct_images
    assert report.stats.uploaded == distinct == 170
    assert live_server.counter.images[BATCH] == distinct
    assert fake_llm.calls == distinct
    assert live_server.counter.requests[CHECK] == 1
    assert report.stats.upload_bytes < report.stats.folder_bytes
    assert not report.incomplete


async def test_second_run_uploads_nothing(
    live_server: LiveServer, folder: PhotoFolder, tmp_path: Path
) -> None:
    state = tmp_path / "s.jsonl"
    await classify_paths([folder.root], options(live_server, state))
    live_server.counter.reset()

    resumed = await classify_paths([folder.root], options(live_server, state))
    assert live_server.counter.requests[BATCH] == 0
    assert live_server.counter.requests[CHECK] == 0
    assert resumed.stats.from_state == folder.distinct_images + 1  # the corrupt file too
    assert_categories(resumed, folder)

    # Without the state file the server's cache answers every photo.
    cached = await classify_paths([folder.root], options(live_server, tmp_path / "new.jsonl"))
    assert live_server.counter.requests[BATCH] == 0
    assert cached.stats.cache_hits == folder.distinct_images
    assert cached.stats.upload_bytes == 0
    assert_categories(cached, folder)


async def test_interrupted_run_continues_without_uploading_again(
    live_server: LiveServer, folder: PhotoFolder, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    state = tmp_path / "s.jsonl"
    first = await classify_paths([folder.root], options(live_server, state, max_uploads=50))
    assert first.incomplete
    assert live_server.counter.images[BATCH] == 50
    # A run killed while writing leaves a torn last line behind.
    with state.open("ab") as handle:
        handle.write(b'{"v": 1, "outcome": {"image_hash": "ab')

    second = await classify_paths([folder.root], options(live_server, state))
    assert not second.incomplete
    assert live_server.counter.images[BATCH] == folder.distinct_images
    assert fake_llm.calls == folder.distinct_images
    assert_categories(second, folder)
    assert len(StateFile(state).load()) == folder.distinct_images + 1


async def classified(server: LiveServer, folder: PhotoFolder, tmp_path: Path) -> Report:
    return await classify_paths(
        [folder.root], options(server, tmp_path / "s.jsonl", exclude=[tmp_path / "sorted"])
    )


@pytest.mark.parametrize("mode", list(OrganizeMode))
async def test_organize_puts_every_file_in_its_category_folder(
    live_server: LiveServer, folder: PhotoFolder, tmp_path: Path, mode: OrganizeMode
) -> None:
    originals = {path: path.read_bytes() for path in folder.expected}
    report = await classified(live_server, folder, tmp_path)
    target = tmp_path / "sorted"
    placed = organize(report, target, mode)

    assert len(placed) == len(folder.expected)
    destinations = [photo.destination for photo in placed]
    assert len(set(destinations)) == len(destinations)
    for photo in placed:
        assert photo.destination is not None
        category = folder.expected[photo.path]
        assert photo.destination.parent == target / CATEGORY_NAMES[category]
        assert photo.destination.read_bytes() == originals[photo.path]
        assert photo.path.exists() == (mode is not OrganizeMode.move)
        if mode is OrganizeMode.link:
            assert os.path.samefile(photo.destination, photo.path)
    # Same name, other content: kept side by side with a suffix.
    names = {photo.destination.name for photo in placed if photo.destination}
    assert any(" (1)" in name for name in names)
    # The corrupt file is never touched.
    assert folder.corrupt[0].exists()
    on_disk = [path for path in target.rglob("*") if path.is_file()]
    assert len(on_disk) == len(folder.expected)


async def test_organize_twice_adds_no_copies(
    live_server: LiveServer, folder: PhotoFolder, tmp_path: Path
) -> None:
    target = tmp_path / "sorted"
    organize(await classified(live_server, folder, tmp_path), target, OrganizeMode.copy)
    again = organize(await classified(live_server, folder, tmp_path), target, OrganizeMode.copy)
    assert len(again) == len(folder.expected)
    assert len([p for p in target.rglob("*") if p.is_file()]) == len(folder.expected)


async def test_organize_never_overwrites_an_existing_file(
    live_server: LiveServer, folder: PhotoFolder, tmp_path: Path
) -> None:
    report = await classified(live_server, folder, tmp_path)
    photo = report.files[0]
    category = report.outcomes[photo.image_hash].category
    assert category is not None
    stranger = tmp_path / "sorted" / CATEGORY_NAMES[Category(category)] / photo.path.name
    stranger.parent.mkdir(parents=True)
    stranger.write_bytes(b"someone else's file")

    organize(report, tmp_path / "sorted", OrganizeMode.copy)
    assert stranger.read_bytes() == b"someone else's file"
    assert photo.destination == stranger.with_name(f"{stranger.stem} (1){stranger.suffix}")
    assert photo.destination.read_bytes() == photo.path.read_bytes()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "xintu.cli", "classify", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_command_line_sorts_resumes_and_writes_reports(
    live_server: LiveServer, tmp_path: Path
) -> None:
    folder = build_folder(tmp_path / "photos", photos=30, duplicates=4, non_images=2)
    state, target = tmp_path / "state.jsonl", tmp_path / "sorted"
    common = ["--server", live_server.url, "--state", str(state), "--workers", "2", "-q"]

    first = await asyncio.to_thread(
        run_cli, str(folder.root), *common, "--max-uploads", "10", cwd=tmp_path
    )
    assert first.returncode == 3, first.stderr
    assert live_server.counter.images[BATCH] == 10

    args = [str(folder.root), *common, "--organize", str(target), "--move"]
    args += ["--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv")]
    second = await asyncio.to_thread(run_cli, *args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert live_server.counter.images[BATCH] == 30

    rows = json.loads((tmp_path / "r.json").read_text())["files"]
    assert len(rows) == len(folder.expected) + 1
    for row in rows:
        source = Path(row["path"])
        if source in folder.corrupt:
            assert row["error_code"] == "invalid_image"
            assert source.exists()
            continue
        assert row["category"] == folder.expected[source].value
        destination = Path(row["destination"])
        assert destination.parent.name == CATEGORY_NAMES[folder.expected[source]]
        assert sha(destination) == row["image_hash"]
        assert not source.exists()
    assert (tmp_path / "r.csv").read_text(encoding="utf-8").count("\n") == len(rows) + 1


def test_command_line_refuses_two_organize_modes(tmp_path: Path) -> None:
    result = run_cli(
        str(tmp_path), "--organize", str(tmp_path / "o"), "--copy", "--move", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "choose one" in result.stderr


async def test_client_retries_429_honouring_retry_after_and_5xx() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "7"}, json={"code": "rate_limited"}),
        httpx.Response(503, json={"code": "unavailable"}),
        httpx.Response(200, json={"success": True, "items": [{"cached": False, "data": None}]}),
    ]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = ApiClient(
        "http://server.test",
        transport=httpx.MockTransport(lambda _: answers.pop(0)),
        sleep=sleep,
        backoff_s=0.5,
    )
    assert await client.check_cache(["a" * 64]) == [None]
    assert sleeps[0] == 7
    assert 0.5 <= sleeps[1] <= 1.0  # the second backoff step: 0.5 s × 2¹ × jitter
    assert client.stats.retries == 2
    await client.aclose()


async def test_client_gives_up_after_network_errors() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = ApiClient(
        "http://server.test", transport=httpx.MockTransport(refuse), sleep=sleep, retries=3
    )
    with pytest.raises(ClientError, match="failed 4 times: ConnectError"):
        await client.check_cache(["a" * 64])
    assert len(sleeps) == 3
    assert sleeps == sorted(sleeps) or max(sleeps) <= 2.0
    await client.aclose()


def test_compression_keeps_long_edge_1024_and_under_400_kb(tmp_path: Path) -> None:
    rng = random.Random(1)
    noisy = Image.frombytes("RGB", (3000, 2000), rng.randbytes(3000 * 2000 * 3))
    path = tmp_path / "big.png"
    noisy.save(path)
    result = compress_for_upload(str(path))
    assert result.data is not None
    assert len(result.data) <= 400 * 1024
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.format == "JPEG"
        assert max(image.size) == 1024


def test_small_jpeg_is_sent_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "small.jpg"
    Image.new("RGB", (200, 100), (1, 2, 3)).save(path, "JPEG")
    assert compress_for_upload(str(path)).data == path.read_bytes()


def test_local_mode_without_the_local_pipeline_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "xintu.inference.local", None)
    with pytest.raises(ClientError, match="--local needs the offline pipeline"):
        load_local_classifier(tmp_path)
