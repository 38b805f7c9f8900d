"""Seed request_log with N rows and time every statistics endpoint over HTTP (ASGI).

    PYTHONPATH=. python bench/stats.py --backend sqlite            # file under /tmp
    PYTHONPATH=. python bench/stats.py --backend mysql --url mysql+asyncmy://root@127.0.0.1:3306/test

Rows are spread uniformly over the last ``--spread-days`` days (default 90, the retention
period: the table a running service holds). Mix: 65 % cache hits (half via check-cache),
25 % remote, 5 % local, 5 % failed; 5,000 client labels, 2 % anonymous by IP.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xintu.categories import Category  # noqa: E402
from xintu.config import Settings  # noqa: E402
from xintu.db import create_engine  # noqa: E402
from xintu.main import create_app  # noqa: E402
from xintu.migrations import upgrade_to_head_async  # noqa: E402
from xintu.models import RequestLog  # noqa: E402

ENDPOINTS = [
    "today",
    "cache-efficiency?days=7",
    "cache-efficiency?days=30",
    "category-distribution?days=30",
    "users/top?limit=10&days=30",
    "costs?days=30",
    "performance?hours=24",
]
COLUMNS = [
    "request_id", "user_id", "ip_address", "endpoint", "image_hash", "category", "confidence",
    "from_cache", "inference_method", "provider", "model", "processing_time_ms", "status_code",
    "error_code", "input_tokens", "output_tokens", "cost", "size_bytes", "created_at",
]  # fmt: skip
CATEGORIES = [c.value for c in Category]


def make_rows(count: int, spread_days: int, seed: int = 7) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    span = spread_days * 86400.0
    rows = []
    for i in range(count):
        created = now - timedelta(seconds=rng.random() * span)
        roll = rng.random()
        user = f"device-{rng.randrange(5000)}" if rng.random() > 0.02 else None
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
        image = f"{rng.randrange(200_000):064x}"
        category = rng.choice(CATEGORIES)
        if roll < 0.65:
            endpoint = rng.choice(("check-cache", "batch-check-cache", "classify", "batch"))
            size = rng.randrange(50_000, 4_000_000)
            row = (endpoint, image, category, 0.9, True, "cache", None, "qwen-vl-plus",
                   rng.lognormvariate(1.0, 0.6), 200, None, 0, 0, 0.0, size)  # fmt: skip
        elif roll < 0.90:
            tokens_in, tokens_out = rng.randrange(900, 1500), rng.randrange(20, 60)
            cost = round((tokens_in * 0.0015 + tokens_out * 0.0045) / 1000, 6)
            latency = rng.lognormvariate(7.0, 0.4)
            row = ("classify", image, category, 0.9, False, "remote", "dashscope", "qwen-vl-plus",
                   latency, 200, None, tokens_in, tokens_out, cost, 400_000)  # fmt: skip
        elif roll < 0.95:
            row = ("classify", image, category, 0.6, False, "local", "local", "local-onnx",
                   rng.lognormvariate(5.0, 0.3), 200, None, 0, 0, 0.0, 400_000)  # fmt: skip
        else:
            latency = rng.lognormvariate(2.0, 0.5)
            row = ("classify", None, None, None, False, None, None, None,
                   latency, 415, "unsupported_media_type", 0, 0, 0.0, None)  # fmt: skip
        rows.append((f"bench-{i}", user, ip, *row, created))
    return rows


def seed_sqlite(path: str, rows: list[tuple[Any, ...]]) -> None:
    connection = sqlite3.connect(path)
    placeholders = ",".join("?" * len(COLUMNS))
    # SQLAlchemy's SQLite DATETIME text format, so that range comparisons match.
    converted = [
        (*row[:-1], row[-1].replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")) for row in rows
    ]
    with connection:
        connection.executemany(
            f"INSERT INTO request_log ({','.join(COLUMNS)}) VALUES ({placeholders})", converted
        )
    connection.execute("ANALYZE")
    connection.close()


async def seed_server(url: str, rows: list[tuple[Any, ...]]) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        for start in range(0, len(rows), 20_000):
            chunk = [dict(zip(COLUMNS, row, strict=True)) for row in rows[start : start + 20_000]]
            await connection.execute(insert(RequestLog), chunk)
    async with engine.begin() as connection:
        if engine.dialect.name in ("mysql", "mariadb"):
            await connection.execute(text("ANALYZE TABLE request_log"))
        else:
            await connection.execute(text("ANALYZE request_log"))
    await engine.dispose()


async def prepare_database(
    backend: str, base_url: str | None, reuse: bool, name: str
) -> tuple[str, Any]:
    if backend == "sqlite":
        directory = os.path.join(tempfile.gettempdir(), "xintu-bench")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{name}.db")
        if not reuse and os.path.exists(path):
            os.remove(path)
        return f"sqlite+aiosqlite:///{path}", None
    assert base_url, "--url is required for server databases"
    url = make_url(base_url)
    if reuse:
        return url.set(database=name).render_as_string(hide_password=False), None
    admin = create_engine(base_url)
    async with admin.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        await connection.execute(text(f"CREATE DATABASE {name}"))
    await admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), None


async def time_endpoints(url: str, repeats: int) -> dict[str, list[float]]:
    data_dir = tempfile.mkdtemp(prefix="xintu-bench-data-")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        data_dir=Path(data_dir),
        local_model_enabled=False,
        admin_username="bench",
        admin_password="bench-password",
        log_level="WARNING",
        log_purge_interval_s=86400.0 * 365,
        log_retention_days=3650,
    )
    app = create_app(settings)
    timings: dict[str, list[float]] = {endpoint: [] for endpoint in ENDPOINTS}
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            login = await client.post(
                "/api/v1/admin/login", json={"username": "bench", "password": "bench-password"}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            for _ in range(repeats):
                for endpoint in ENDPOINTS:
                    started = time.perf_counter()
                    response = await client.get(f"/api/v1/stats/{endpoint}", headers=headers)
                    timings[endpoint].append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "mysql", "postgresql"], default="sqlite")
    parser.add_argument("--url", help="server URL (the --database is created on it)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--spread-days", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--database", default="xintu_bench", help="database (file) name")
    parser.add_argument("--reuse", action="store_true", help="time an already seeded database")
    args = parser.parse_args()

    url, _ = await prepare_database(args.backend, args.url, args.reuse, args.database)
    await upgrade_to_head_async(url)
    if not args.reuse:
        started = time.perf_counter()
        rows = make_rows(args.rows, args.spread_days)
        if args.backend == "sqlite":
            seed_sqlite(make_url(url).database or "", rows)
        else:
            await seed_server(url, rows)
        del rows
        print(f"{args.backend}: seeded {args.rows:,} rows over {args.spread_days} days "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    timings = await time_endpoints(url, args.repeats)
    print(f"{'endpoint':34} {'median ms':>10} {'max ms':>10}")
    for endpoint, values in timings.items():
        # The first round warms caches; report the median and the worst of all rounds.
        print(f"{endpoint:34} {statistics.median(values):10.1f} {max(values):10.1f}")


if __name__ == "__main__":
    asyncio.run(main())
