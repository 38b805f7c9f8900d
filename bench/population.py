"""A simulated population of album users against the real service, measured against the
seed's claims (60–80 % cache hits, 90 %+ bandwidth saved, 30–50 % lower LLM cost).

Run: ``python -m bench.population [--users 60] [--seed 1]``

The service runs in-process (SQLite, quorum 2, the screenshot pre-check on, downscale to
1024 px); the LLM is ``bench/fake_llm_server.py`` in its own process, which counts Qwen-VL
tokens from the pixels it receives. Every user speaks the client protocol: hash the
originals, ``batch-check-cache``, then upload the misses to ``/classify/batch`` (20 per
request) under the originals' hashes. Users come one after another, each from its own IP
(a distinct uploader for the quorum). A user's library holds:

- personal photos only that user has (a few users sync a second device: the same originals
  are checked again);
- viral pictures from a shared pool with Zipf popularity, received either as the forwarded
  file (the same bytes, so the same hash for everyone) or recompressed by a chat app (one of
  a few circulating recompressions, each a new file with a new hash, the same picture);
- screenshots (PNG originals of phone screens; the client uploads a 1024 px JPEG);
- a share of users whose client uploads originals (3000×2250 JPEG) instead of compressing.

Originals other than uploaded ones are not materialised: their sizes are drawn from typical
phone-camera ranges (photos 2–5 MB, screenshots 0.3–1.2 MB), which is all the bandwidth
comparison needs. Near-duplicate hits are counted from the ``near_duplicate`` field of upload
answers when the service sends one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from PIL import Image

from tests.fixtures.fake_llm import COLOURS, COMPLETION_TOKENS, prompt_tokens
from tests.fixtures.screens import PHONES, drawn_screenshot
from xintu.categories import Category
from xintu.config import DEFAULT_MODEL_PRICES, Settings
from xintu.inference.pricing import call_cost
from xintu.main import create_app
from xintu.migrations import upgrade_to_head_async

MODEL = "qwen-vl-plus"
ADMIN = ("bench", "bench password 1")
PHOTO_CATEGORIES = [c for c in Category if c is not Category.screenshot]
SEND_SIDE = 1024


@dataclass(frozen=True, slots=True)
class Picture:
    """One picture as a user holds it: which picture it is, and which file."""

    picture: str  # the picture's identity (recompressed copies share it)
    original_hash: str  # SHA-256 of the file on the phone
    kind: str  # "personal", "viral-file", "viral-recompressed", "screenshot"
    category: Category
    original_bytes: int
    variant: int = 0


@dataclass
class Totals:
    checks: int = 0
    hits: int = 0
    uploads: int = 0
    near_duplicates: int = 0
    bytes_uploaded: int = 0
    bytes_originals: int = 0
    tokens_no_cache: int = 0
    tokens_no_cache_no_downscale: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    pictures: set[str] = field(default_factory=set)
    screenshot_pictures: set[str] = field(default_factory=set)


def photo_pixels(picture: str, size: tuple[int, int], category: Category) -> Image.Image:
    """A smooth, photo-like picture fixed by its identity; the top-left block carries the
    category colour for the fake LLM."""
    rng = np.random.default_rng(int(hashlib.sha256(picture.encode()).hexdigest()[:8], 16))
    coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (size[1], size[0], 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image.paste(COLOURS[category], (0, 0, size[0] // 5, size[1] // 5))
    return image


def jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def upload_bytes(item: Picture, uploads_originals: bool) -> tuple[bytes, tuple[int, int]]:
    """What the user's client uploads for ``item``, and the pixel size the LLM would get."""
    if item.kind == "screenshot":
        device = PHONES[int(item.picture.split("-")[-1]) % len(PHONES)]
        screen = drawn_screenshot(device.size, seed=int(item.picture.split("-")[-1]))
        screen.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
        return jpeg(screen, 85), screen.size
    if uploads_originals and item.kind == "personal":
        image = photo_pixels(item.picture, (3000, 2250), item.category)
        return jpeg(image, 92), (3000, 2250)
    # The client's copy (1024 px, quality 85); a recompressed viral copy went through a chat
    # app first, so each circulating recompression differs in size and quality.
    size = (1024, 768) if item.variant == 0 else (960 - 40 * item.variant, 720 - 30 * item.variant)
    quality = 85 if item.variant == 0 else 80 - 7 * item.variant
    return jpeg(photo_pixels(item.picture, size, item.category), quality), size


def sent_size(size: tuple[int, int]) -> tuple[int, int]:
    scale = min(1.0, SEND_SIDE / max(size))
    return round(size[0] * scale), round(size[1] * scale)


def libraries(args: argparse.Namespace, rng: random.Random) -> list[list[Picture]]:
    weights = [1 / (rank + 1) for rank in range(args.viral_pool)]
    users = []
    for user in range(args.users):
        library: list[Picture] = []
        for index in range(args.personal):
            picture = f"personal-{user}-{index}"
            library.append(
                Picture(
                    picture,
                    hashlib.sha256(picture.encode()).hexdigest(),
                    "personal",
                    rng.choice(PHOTO_CATEGORIES),
                    rng.randint(2_000_000, 5_000_000),
                )
            )
        for viral in set(rng.choices(range(args.viral_pool), weights=weights, k=args.viral)):
            picture = f"viral-{viral}"
            category = PHOTO_CATEGORIES[viral % len(PHOTO_CATEGORIES)]
            if rng.random() < args.forwarded_as_file:
                variant, kind = 0, "viral-file"
            else:
                variant, kind = rng.randint(1, args.recompressions), "viral-recompressed"
            original_hash = hashlib.sha256(f"{picture}-file-{variant}".encode()).hexdigest()
            size = rng.randint(150_000, 600_000) if variant else rng.randint(300_000, 2_000_000)
            library.append(Picture(picture, original_hash, kind, category, size, variant))
        for index in range(args.screenshots):
            picture = f"screenshot-{user * 100 + index}"
            library.append(
                Picture(
                    picture,
                    hashlib.sha256(picture.encode()).hexdigest(),
                    "screenshot",
                    Category.screenshot,
                    rng.randint(300_000, 1_200_000),
                )
            )
        rng.shuffle(library)
        users.append(library)
    return users


async def sync(
    client: httpx.AsyncClient, library: list[Picture], uploads_originals: bool, totals: Totals
) -> None:
    """One device's sync: check every original, upload the misses."""
    hashes = [item.original_hash for item in library]
    response = await client.post(
        "/api/v1/classify/batch-check-cache", json={"image_hashes": hashes}
    )
    response.raise_for_status()
    cached = {item["image_hash"] for item in response.json()["items"] if item["cached"]}
    misses = [item for item in library if item.original_hash not in cached]
    totals.checks += len(library)
    totals.hits += len(library) - len(misses)
    for item in library:
        totals.pictures.add(item.picture)
        if item.kind == "screenshot":
            totals.screenshot_pictures.add(item.picture)
        totals.bytes_originals += item.original_bytes
    for start in range(0, len(misses), 20):
        chunk = misses[start : start + 20]
        files = []
        for item in chunk:
            data, _size = upload_bytes(item, uploads_originals)
            totals.bytes_uploaded += len(data)
            files.append(("images", (f"{item.picture}.jpg", data, "image/jpeg")))
        response = await client.post(
            "/api/v1/classify/batch",
            files=files,
            data={"image_hashes": json.dumps([item.original_hash for item in chunk])},
        )
        response.raise_for_status()
        for result in response.json()["items"]:
            if not result["success"]:
                totals.methods[f"error:{result['error_code']}"] += 1
                continue
            data = result["data"]
            totals.uploads += 1
            totals.methods[f"{data['inference_method']}:{data['model']}"] += 1
            if data.get("near_duplicate"):
                totals.near_duplicates += 1


def no_cache_tokens(library: list[Picture], uploads_originals: bool, totals: Totals) -> None:
    """What the LLM would read if every picture of this sync were sent to it."""
    for item in library:
        if item.kind == "screenshot":
            size = (473, 1024)
        elif uploads_originals and item.kind == "personal":
            size = (3000, 2250)
        elif item.variant:
            size = (960 - 40 * item.variant, 720 - 30 * item.variant)
        else:
            size = (1024, 768)
        totals.tokens_no_cache += prompt_tokens(*sent_size(size)) + COMPLETION_TOKENS
        totals.tokens_no_cache_no_downscale += prompt_tokens(*size) + COMPLETION_TOKENS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_for_port(port: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the fake LLM server did not start")
        await asyncio.sleep(0.1)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--personal", type=int, default=12)
    parser.add_argument("--viral", type=int, default=24, help="viral pictures drawn per user")
    parser.add_argument("--viral-pool", type=int, default=150)
    parser.add_argument("--forwarded-as-file", type=float, default=0.5)
    parser.add_argument("--recompressions", type=int, default=3)
    parser.add_argument("--screenshots", type=int, default=4)
    parser.add_argument("--originals-share", type=float, default=0.1)
    parser.add_argument("--second-device-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_llm_server", str(port), "0"],
        cwd=Path(__file__).resolve().parent.parent,
    )
    workdir = Path(tempfile.mkdtemp(prefix="xintu-population-"))
    url = f"sqlite+aiosqlite:///{workdir}/population.db"
    try:
        await wait_for_port(port, 180)
        await upgrade_to_head_async(url)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            data_dir=workdir,
            database_url=url,
            providers="openai",
            openai_api_key="sk-bench",
            openai_base_url=f"http://127.0.0.1:{port}/v1",
            openai_model=MODEL,
            rate_limit_classify="0",
            rate_limit_check="0",
            local_model_enabled=False,
            log_level="WARNING",
            admin_username=ADMIN[0],
            admin_password=ADMIN[1],
        )
        app = create_app(settings)
        totals = Totals()
        async with LifespanManager(app, startup_timeout=120, shutdown_timeout=120):
            for user, library in enumerate(libraries(args, rng)):
                originals = rng.random() < args.originals_share
                devices = 2 if rng.random() < args.second_device_share else 1
                transport = httpx.ASGITransport(
                    app=app, client=(f"10.{user // 250}.{user % 250}.1", 1)
                )
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://bench", timeout=120
                ) as client:
                    for _device in range(devices):
                        no_cache_tokens(library, originals, totals)
                        await sync(client, library, originals, totals)
            await app.state.classification.writer.flush()
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                login = await client.post(
                    "/api/v1/admin/login", json={"username": ADMIN[0], "password": ADMIN[1]}
                )
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                costs = (await client.get("/api/v1/stats/costs", headers=headers)).json()["data"]
                efficiency = (
                    await client.get("/api/v1/stats/cache-efficiency", headers=headers)
                ).json()["data"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    report(totals, costs, efficiency)


def report(totals: Totals, costs: dict[str, Any], efficiency: dict[str, Any]) -> None:
    calls = int(costs["total_calls"])
    tokens = sum(
        int(item["input_tokens"]) + int(item["output_tokens"]) for item in costs["providers"]
    )
    # Without a cache every picture checked is a call: its prompt and a completion.
    completions = totals.checks * COMPLETION_TOKENS
    no_cache_cost = float(
        call_cost(DEFAULT_MODEL_PRICES, MODEL, totals.tokens_no_cache - completions, completions)
    )
    distinct = len(totals.pictures)
    needing_llm = distinct - len(totals.screenshot_pictures)
    hit_rate = totals.hits / totals.checks
    bandwidth_saved = 1 - totals.bytes_uploaded / totals.bytes_originals
    cost_lower = 1 - float(costs["total_cost"]) / no_cache_cost if no_cache_cost else 0.0
    print(f"pictures checked {totals.checks}, distinct pictures {distinct} "
          f"({len(totals.screenshot_pictures)} screenshots)")  # fmt: skip
    print(f"answers of uploads: {dict(totals.methods.most_common())}")
    rows = [
        ("check-cache hit rate", f"{hit_rate:.1%}", "60–80 %"),
        ("near-duplicate hits (of uploads)", f"{totals.near_duplicates} / {totals.uploads}", "—"),
        ("LLM calls / distinct pictures", f"{calls} / {distinct} = {calls / distinct:.2f}", "—"),
        (
            "LLM calls / distinct non-screenshots",
            f"{calls} / {needing_llm} = {calls / needing_llm:.2f}",
            "≤ 1.05 (issue 15)",
        ),
        (
            "bytes uploaded / originals",
            f"{totals.bytes_uploaded / 1e6:.1f} MB / {totals.bytes_originals / 1e6:.1f} MB",
            "",
        ),  # fmt: skip
        ("bandwidth saved", f"{bandwidth_saved:.1%}", "90 %+"),
        ("tokens used", f"{tokens:,}", ""),
        (
            "tokens without cache (with / without downscale)",
            f"{totals.tokens_no_cache:,} / {totals.tokens_no_cache_no_downscale:,}",
            "",
        ),  # fmt: skip
        ("LLM cost vs no cache (CNY)", f"{costs['total_cost']:.4f} vs {no_cache_cost:.4f}", ""),
        ("LLM cost lower by", f"{cost_lower:.1%}", "30–50 %"),
        ("/stats/costs savings_rate", f"{costs['savings_rate']:.1%}", ""),
        ("/stats/cache-efficiency hit_rate", f"{efficiency['hit_rate']:.1%}", ""),
    ]
    print(f"\n{'measure':50} {'measured':>32}  seed's claim")
    for name, value, claim in rows:
        print(f"{name:50} {value:>32}  {claim}")


if __name__ == "__main__":
    asyncio.run(main())
