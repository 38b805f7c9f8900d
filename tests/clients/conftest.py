"""A real uvicorn server on a free 127.0.0.1 port, the fake LLM as its provider, and a
counter of what reached it; photo folders for the clients to sort."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.conftest import llm_settings
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.images import make_image
from xintu.categories import Category
from xintu.config import Settings
from xintu.main import create_app

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@dataclass
class RequestCounter:
    """ASGI wrapper counting requests and body bytes per path."""

    app: Any
    requests: Counter[str] = field(default_factory=Counter)
    body_bytes: Counter[str] = field(default_factory=Counter)
    images: Counter[str] = field(default_factory=Counter)  # multipart parts named "images"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        self.requests[path] += 1

        async def counting_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                self.body_bytes[path] += len(body)
                self.images[path] += body.count(b'name="images"')
            return message

        await self.app(scope, counting_receive, send)

    def reset(self) -> None:
        self.requests.clear()
        self.body_bytes.clear()
        self.images.clear()


@dataclass
class LiveServer:
    url: str
    counter: RequestCounter
    app: Any


def _wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


@pytest.fixture
def live_server(sqlite_url: str, fake_llm: FakeLLM, tmp_path: Path) -> Iterator[LiveServer]:
    """The service under uvicorn in a thread of its own (its own event loop)."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=sqlite_url,
        data_dir=tmp_path / "data",
        local_model_enabled=False,
        rate_limit_classify="0",
        rate_limit_check="0",
        log_flush_interval_s=0.2,
        log_level="WARNING",
        **llm_settings(fake_llm),
    )
    app = create_app(settings)
    counter = RequestCounter(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        counter,
        log_config=None,
        access_log=False,
        loop="asyncio",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait_until(lambda: server.started, 20, "uvicorn did not start")
    yield LiveServer(f"http://127.0.0.1:{port}", counter, app)
    server.should_exit = True
    thread.join(30)
    sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


CATEGORIES = list(Category)


@dataclass
class PhotoFolder:
    root: Path
    expected: dict[Path, Category]  # every image file → its category
    non_images: list[Path]
    corrupt: list[Path]

    @property
    def distinct_images(self) -> int:
        return len({path.read_bytes() for path in self.expected})


def build_folder(root: Path, photos: int, duplicates: int, non_images: int) -> PhotoFolder:
    """Photos in nested folders (JPEG, a few PNG/WebP/HEIC and large ones), copies of some
    under other names, files that are not images (one named .jpg) and one corrupt JPEG."""
    expected: dict[Path, Category] = {}
    formats = [("JPEG", ".jpg")] * 7 + [("PNG", ".png"), ("WEBP", ".webp"), ("HEIF", ".heic")]
    for index in range(photos):
        category = CATEGORIES[index % len(CATEGORIES)]
        image_format, suffix = formats[index % len(formats)]
        size = (1600, 1200) if index % 25 == 0 else (64, 48)
        data = make_image(category, seed=index, size=size, image_format=image_format)
        path = root / f"album{index % 3}" / f"IMG_{index:04d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[path] = category
    originals = list(expected.items())
    for index in range(duplicates):
        source, category = originals[index * 3 % len(originals)]
        copy = root / "copies" / (f"copy_{index}" + source.suffix if index % 2 else source.name)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        expected[copy] = category
    others = []
    for index in range(non_images):
        name = ["notes.txt", "fake.jpg", "clip.mp4", "data.json"][index % 4]
        path = root / "misc" / f"{index}_{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not an image at all " * (index + 1))
        others.append(path)
    corrupt = root / "misc" / "broken.jpg"
    whole = make_image(Category.pets, seed=99_999, size=(640, 480))
    corrupt.write_bytes(whole[: len(whole) // 2])
    return PhotoFolder(root, expected, others, [corrupt])
