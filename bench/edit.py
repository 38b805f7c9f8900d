"""Edit throughput and queue latency.

    PYTHONPATH=. python bench/edit.py [--tasks 40] [--size 1024x768] [--redis redis://127.0.0.1:6379/0]

1. The cost of each local operation alone (one thread).
2. Local edits through the whole path (HTTP submit → queue → worker → result row) with
   the in-memory broker at 1 and 2 concurrent workers in the service process.
3. With --redis: the same through Redis with 1 and 2 `xintu worker` processes
   (concurrency 1 each).

Throughput = tasks / (last finished_at − first created_at). Queue latency = started_at −
created_at of each task (submit → running), p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from asgi_lifespan import LifespanManager
from PIL import Image
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xintu.config import Settings  # noqa: E402
from xintu.edit.local import run_local_edit  # noqa: E402
from xintu.main import create_app  # noqa: E402
from xintu.migrations import upgrade_to_head_async  # noqa: E402
from xintu.models import ImageEditTask, WechatUser  # noqa: E402
from xintu.users.security import create_access_token  # noqa: E402

OPERATIONS = ("enhance", "cartoon", "sketch", "id_photo")


def make_photo(seed: int, size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            128 + 100 * np.sin(x / 40 + seed),
            128 + 100 * np.cos(y / 30),
            128 + 60 * np.sin((x + y) / 50),
        ],
        axis=-1,
    ) + rng.normal(0, 8, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(base, 0, 255).astype("uint8")).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def single_operation_costs(size: tuple[int, int]) -> None:
    image = Image.open(io.BytesIO(make_photo(0, size)))
    image.load()
    print(f"\n1. one local edit alone, {size[0]}x{size[1]} (ms, median of 5)")
    params = {
        "enhance": {"strength": 0.6},
        "cartoon": {"levels": 8},
        "sketch": {"blur": 10.0},
        "id_photo": {"size": "1inch"},
    }
    for operation in OPERATIONS:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            run_local_edit(operation, image, params[operation])
            timings.append((time.perf_counter() - started) * 1000)
        print(f"   {operation:9s} {statistics.median(timings):7.1f}")


async def run_batch(
    label: str,
    settings: dict[str, Any],
    tasks: int,
    size: tuple[int, int],
    workers: int = 0,
    one_at_a_time: bool = False,
) -> None:
    app = create_app(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    photos = [make_photo(seed, size) for seed in range(tasks)]
    processes: list[subprocess.Popen[bytes]] = []
    async with LifespanManager(app):
        async with app.state.db.sessionmaker() as session, session.begin():
            user = WechatUser(nickname="bench")
            session.add(user)
            await session.flush()
            user_id = user.id
        token = create_access_token(
            "user", user_id, app.state.settings.jwt_secret, timedelta(hours=1)
        )
        headers = {"Authorization": f"Bearer {token}"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("XINTU_")}
        env.update({f"XINTU_{k.upper()}": str(v) for k, v in settings.items()})
        env["PYTHONPATH"] = str(ROOT)
        env["XINTU_LOG_LEVEL"] = "INFO"
        logs = [Path(settings["data_dir"]) / f"worker{index}.log" for index in range(workers)]
        for log in logs:
            with open(log, "wb") as handle:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "xintu.cli", "worker"],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=handle,
                        cwd=settings["data_dir"],
                    )
                )
        # Time the queue, not the workers' start-up: wait until each one listens.
        deadline = time.monotonic() + 60
        while not all("serving queue" in log.read_text() for log in logs):
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start")
            await asyncio.sleep(0.1)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for index, data in enumerate(photos):
                response = await client.post(
                    "/api/v1/edit/tasks",
                    files={"file": ("p.jpg", data, "image/jpeg")},
                    data={"operation": OPERATIONS[index % len(OPERATIONS)]},
                    headers=headers,
                )
                assert response.status_code == 202, response.text
                if one_at_a_time:
                    task_url = f"/api/v1/edit/tasks/{response.json()['task_id']}"
                    while (await client.get(task_url, headers=headers)).json()["status"] in (
                        "queued",
                        "running",
                    ):
                        await asyncio.sleep(0.005)
            deadline = time.monotonic() + 600
            while True:
                async with app.state.db.sessionmaker() as session:
                    rows = list((await session.scalars(select(ImageEditTask))).all())
                if all(row.status in ("succeeded", "failed") for row in rows):
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("timed out")
                await asyncio.sleep(0.05)
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    failed = [row for row in rows if row.status != "succeeded"]
    first = min(row.created_at for row in rows)
    last = max(row.finished_at for row in rows if row.finished_at)
    waits = [
        (row.started_at - row.created_at).total_seconds() * 1000 for row in rows if row.started_at
    ]
    span = (last - first).total_seconds()
    if one_at_a_time:
        print(
            f"   {label:34s} idle-queue latency p50 {percentile(waits, 50):7.1f} ms"
            f"  p99 {percentile(waits, 99):7.1f} ms  (n={len(waits)})"
        )
        return
    print(
        f"   {label:34s} {tasks / span:6.2f} tasks/s   "
        f"queue latency p50 {percentile(waits, 50):8.1f} ms"
        f"  p99 {percentile(waits, 99):8.1f} ms   failed {len(failed)}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--size", default="1024x768")
    parser.add_argument("--redis", default=os.environ.get("XINTU_TEST_REDIS_URL"))
    args = parser.parse_args()
    size = tuple(int(part) for part in args.size.split("x"))
    assert len(size) == 2
    print(
        f"CPU cores: {os.cpu_count()}; {args.tasks} tasks, "
        f"operations mixed: {', '.join(OPERATIONS)}"
    )
    single_operation_costs(size)  # type: ignore[arg-type]
    print("\n2. in-memory broker, workers inside the service process (SQLite)")
    for concurrency in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            await upgrade_to_head_async(url)
            base = {
                "data_dir": folder,
                "database_url": url,
                "local_model_enabled": False,
                "log_level": "ERROR",
                "edit_max_queued_per_user": 100000,
                "edit_worker_concurrency": concurrency,
                "edit_sweep_interval_s": 1.0,
            }
            await run_batch(f"{concurrency} in-process worker(s)", base, args.tasks, size)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await upgrade_to_head_async(url)
        base = {
            "data_dir": folder,
            "database_url": url,
            "local_model_enabled": False,
            "log_level": "ERROR",
            "edit_max_queued_per_user": 100000,
            "edit_worker_concurrency": 1,
            "edit_sweep_interval_s": 1.0,
        }
        await run_batch("in-process, one task at a time", base, 30, (96, 64), one_at_a_time=True)
    if args.redis:
        print(f"\n3. Redis broker ({args.redis}), separate `xintu worker` processes (SQLite)")
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite+aiosqlite:///{folder}/bench.db"
                await upgrade_to_head_async(url)
                base = {
                    "data_dir": folder,
                    "database_url": url,
                    "local_model_enabled": False,
                    "log_level": "ERROR",
                    "edit_max_queued_per_user": 100000,
                    "edit_worker_concurrency": 1,
                    "edit_sweep_interval_s": 1.0,
                    "redis_url": args.redis,
                    "edit_queue_name": f"xintu:bench:{os.getpid()}",
                    "rate_limit_classify": "0",
                    "rate_limit_check": "0",
                }
                await run_batch(
                    f"{workers} xintu worker process(es)", base, args.tasks, size, workers
                )  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/bench.db"
            await upgrade_to_head_async(url)
            base = {**base, "data_dir": folder, "database_url": url}
            await run_batch("Redis, one task at a time", base, 30, (96, 64), 1, True)


if __name__ == "__main__":
    asyncio.run(main())
