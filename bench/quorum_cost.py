"""What the cache-poisoning rule costs in hit rate and LLM calls (DESIGN §4.1).

Drives the real service in-process (fake LLM, SQLite) with the original clients' flow:
every user hashes the original, asks check-cache, and on a miss uploads a compressed copy
under the original's hash (a claim the server cannot verify). Photo popularity follows a
Zipf law, as shared pictures (memes, forwarded photos) do. Each photo is one textured
picture; every user's copy is compressed differently (JPEG quality 60–95, long side
640–800). With ``--forwarded`` of the picks, the user's file is a chat app's recompressed
copy: a new original hash, the same picture. Prints, for quorum 1 (no protection: a claim
is shared at once), 2 and 3: the share of requests answered from the cache, LLM calls and
LLM calls per distinct picture.

    .venv/bin/python bench/quorum_cost.py [--users 100] [--photos 1000] [--per-user 30]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import random
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.fake_llm import COLOURS, FakeLLM  # noqa: E402
from xintu.categories import Category  # noqa: E402
from xintu.config import Settings  # noqa: E402
from xintu.main import create_app  # noqa: E402
from xintu.migrations import upgrade_to_head_async  # noqa: E402


def picture(photo: int, category: Category) -> Image.Image:
    """One textured picture per photo: gradients and soft blobs of random colours."""
    rng = np.random.default_rng(photo)
    height, width = 600, 800
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.zeros((height, width, 3), np.float32)
    pixels += rng.uniform(40, 200, 3) * (x / width)[..., None]
    pixels += rng.uniform(0, 80, 3) * (y / height)[..., None]
    for _ in range(12):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(30, 160)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
        pixels += blob[..., None] * rng.uniform(-120, 120, 3)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image.paste(COLOURS[category], (0, 0, 12, 12))
    return image


def compressed(image: Image.Image, rng: random.Random) -> bytes:
    """A phone's or chat app's copy: its own size and JPEG quality."""
    side = rng.randrange(640, 801)
    copy = image.resize((side, side * 3 // 4), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    copy.save(buffer, "JPEG", quality=rng.randrange(60, 96))
    return buffer.getvalue()


async def run(
    quorum: int, users: int, photos: int, per_user: int, forwarded: float, seed: int
) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="xintu-quorum-"))
    url = f"sqlite+aiosqlite:///{workdir}/q.db"
    await upgrade_to_head_async(url)
    fake = FakeLLM(keep_requests=False)
    await fake.start()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=workdir,
        database_url=url,
        providers="openai",
        openai_api_key="sk-bench",
        openai_base_url=fake.base_url,
        rate_limit_classify="0",
        rate_limit_check="0",
        local_model_enabled=False,
        log_level="WARNING",
        cache_quorum=quorum,
    )
    app = create_app(settings)
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(photos)]
    categories = list(Category)
    pictures: dict[int, Image.Image] = {}
    hits = upload_hits = near = requests = 0
    asked: set[int] = set()
    async with LifespanManager(app):
        for user in range(users):
            transport = httpx.ASGITransport(app=app, client=(f"10.{user // 250}.{user % 250}.1", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for photo in set(rng.choices(range(photos), weights=weights, k=per_user)):
                    requests += 1
                    asked.add(photo)
                    if rng.random() < forwarded:
                        # A recompressed forward: the user's file has a hash of its own.
                        name = f"forward-{photo}-{user}"
                    else:
                        name = f"original-{photo}"
                    original_hash = hashlib.sha256(name.encode()).hexdigest()
                    check = await client.post(
                        "/api/v1/classify/check-cache", json={"image_hash": original_hash}
                    )
                    if check.json()["cached"]:
                        hits += 1
                        continue
                    if photo not in pictures:
                        pictures[photo] = picture(photo, categories[photo % len(categories)])
                    response = await client.post(
                        "/api/v1/classify",
                        files={"image": ("p.jpg", compressed(pictures[photo], rng), "image/jpeg")},
                        data={"image_hash": original_hash},
                    )
                    assert response.status_code == 200, response.text
                    if response.json()["from_cache"]:
                        upload_hits += 1
                        near += bool(response.json()["data"].get("near_duplicate"))
    await fake.stop()
    return {
        "quorum": quorum,
        "requests": requests,
        "check_cache_hit_rate": round(hits / requests, 4),
        "answered_from_cache": round((hits + upload_hits) / requests, 4),
        "near_duplicate_hits": near,
        "llm_calls": fake.calls,
        "distinct_pictures": len(asked),
        "llm_calls_per_picture": round(fake.calls / len(asked), 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--per-user", type=int, default=30)
    parser.add_argument("--forwarded", type=float, default=0.2)
    parser.add_argument("--quorums", default="1,2,3")
    args = parser.parse_args()
    for quorum in (int(value) for value in args.quorums.split(",")):
        result = await run(quorum, args.users, args.photos, args.per_user, args.forwarded, seed=1)
        print(result, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
