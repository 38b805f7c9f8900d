"""What the cache-poisoning rule costs in hit rate (DESIGN §4.1).

Drives the real service in-process (fake LLM, SQLite) with the original clients' flow:
every user hashes the original, asks check-cache, and on a miss uploads a compressed copy
under the original's hash (a claim the server cannot verify). Photo popularity follows a
Zipf law, as shared pictures (memes, forwarded photos) do. Prints the share of requests
answered from the cache for quorum 1 (no protection: a claim is shared at once), 2 and 3.

    .venv/bin/python bench/quorum_cost.py [--users 200] [--photos 2000] [--per-user 40]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys
import tempfile
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fixtures.fake_llm import FakeLLM  # noqa: E402
from tests.fixtures.images import make_image  # noqa: E402
from xintu.categories import Category  # noqa: E402
from xintu.config import Settings  # noqa: E402
from xintu.main import create_app  # noqa: E402
from xintu.migrations import upgrade_to_head_async  # noqa: E402


async def run(quorum: int, users: int, photos: int, per_user: int, seed: int) -> dict[str, float]:
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
    hits = requests = 0
    async with LifespanManager(app):
        for user in range(users):
            transport = httpx.ASGITransport(app=app, client=(f"10.{user // 250}.{user % 250}.1", 1))
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for photo in set(rng.choices(range(photos), weights=weights, k=per_user)):
                    original_hash = hashlib.sha256(f"original-{photo}".encode()).hexdigest()
                    requests += 1
                    check = await client.post(
                        "/api/v1/classify/check-cache", json={"image_hash": original_hash}
                    )
                    if check.json()["cached"]:
                        hits += 1
                        continue
                    # Each user's phone compresses differently: distinct bytes, same original.
                    compressed = make_image(
                        categories[photo % len(categories)], seed=photo * 10_000 + user
                    )
                    response = await client.post(
                        "/api/v1/classify",
                        files={"image": ("p.jpg", compressed, "image/jpeg")},
                        data={"image_hash": original_hash},
                    )
                    assert response.status_code == 200, response.text
    await fake.stop()
    return {
        "quorum": quorum,
        "requests": requests,
        "hit_rate": round(hits / requests, 4),
        "llm_calls": fake.calls,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--per-user", type=int, default=40)
    args = parser.parse_args()
    baseline = None
    for quorum in (1, 2, 3):
        result = await run(quorum, args.users, args.photos, args.per_user, seed=1)
        baseline = baseline or result
        result["hit_rate_vs_quorum_1"] = round(result["hit_rate"] / baseline["hit_rate"], 3)
        print(result)


if __name__ == "__main__":
    asyncio.run(main())
