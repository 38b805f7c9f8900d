"""Soak: a steady mixed load below capacity for minutes, watching memory, latency and loss.

Starts the service (`xintu serve`, one worker, SQLite unless --database-url, Redis when
--redis-url) with a fake LLM answering in 200 ms, then sends requests at a fixed rate
(open loop: a slow answer does not slow the sender) in this mix: check-cache (hits and
misses), batch-check-cache, uploads (new and known images), classify/batch, geo batch and
image edits. Prints, per minute, the requests, errors and p99 latency, the service's RSS at
start and end, and compares the request_log rows written with the classifications served.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 40]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# Share of requests per kind (sums to 1).
MIX = {
    "check-cache": 0.50,
    "batch-check-cache": 0.10,
    "upload-new": 0.10,
    "upload-known": 0.10,
    "batch-upload": 0.05,
    "geo-batch": 0.12,
    "edit": 0.03,
}
SEED_IMAGES = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def image(seed: int, colour: tuple[int, int, int] = (0, 250, 0), side: int = 96) -> bytes:
    """A small JPEG, distinct per seed, whose top-left colour the fake LLM reads."""
    rng = random.Random(seed)
    picture = Image.new("RGB", (side, side), colour)
    for _ in range(30):
        xy = (rng.randrange(10, side), rng.randrange(10, side))
        picture.putpixel(xy, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Results:
    # (second since start, kind, status, latency ms); status 0 = no answer
    samples: list[tuple[float, str, int, float]] = field(default_factory=list)
    served: int = 0  # classifications answered, i.e. request_log rows expected
    rss: list[tuple[float, float]] = field(default_factory=list)


class Load:
    def __init__(self, base: str, session: aiohttp.ClientSession, known: list[bytes]) -> None:
        self.base = base
        self.session = session
        self.known = known
        self.known_hashes = [hashlib.sha256(data).hexdigest() for data in known]
        self.new_seed = 1_000_000
        self.edit_seed = 5_000_000
        self.tokens: list[str] = []
        self.rng = random.Random(7)

    async def login(self, users: int) -> None:
        for number in range(users):
            async with self.session.post(
                f"{self.base}/api/v1/auth/guest", json={"device_id": f"soak-device-{number}"}
            ) as response:
                self.tokens.append((await response.json())["access_token"])

    async def one(self, kind: str) -> tuple[int, int]:
        """Send one request of ``kind``; returns its status and the classifications served."""
        api = f"{self.base}/api/v1"
        rng = self.rng
        if kind == "check-cache":
            known = rng.random() < 0.8
            image_hash = rng.choice(self.known_hashes) if known else rng.randbytes(32).hex()
            async with self.session.post(
                f"{api}/classify/check-cache", json={"image_hash": image_hash}
            ) as response:
                body = await response.json()
                return response.status, int(bool(body.get("cached")))
        if kind == "batch-check-cache":
            hashes = rng.sample(self.known_hashes, 15) + [rng.randbytes(32).hex() for _ in range(5)]
            async with self.session.post(
                f"{api}/classify/batch-check-cache", json={"image_hashes": hashes}
            ) as response:
                body = await response.json()
                return response.status, int(body.get("cached_count", 0))
        if kind in ("upload-new", "upload-known"):
            if kind == "upload-new":
                self.new_seed += 1
                data = image(self.new_seed)
            else:
                data = rng.choice(self.known)
            async with self.session.post(
                f"{api}/classify", data=data, headers={"Content-Type": "image/jpeg"}
            ) as response:
                await response.read()
                return response.status, 1
        if kind == "batch-upload":
            form = aiohttp.FormData()
            for _ in range(3):
                self.new_seed += 1
                form.add_field("images", image(self.new_seed), filename="p.jpg")
            form.add_field("images", rng.choice(self.known), filename="k.jpg")
            async with self.session.post(f"{api}/classify/batch", data=form) as response:
                body = await response.json()
                return response.status, int(body.get("total", 0))
        if kind == "geo-batch":
            points = [
                {"latitude": rng.uniform(20, 45), "longitude": rng.uniform(100, 122)}
                for _ in range(10)
            ]
            async with self.session.post(
                f"{api}/geo/locate/batch", json={"points": points}
            ) as response:
                await response.read()
                return response.status, 0
        if kind == "edit":
            self.edit_seed += 1
            form = aiohttp.FormData()
            form.add_field("file", image(self.edit_seed, (200, 120, 40), 160), filename="e.jpg")
            form.add_field("operation", "sketch")
            token = rng.choice(self.tokens)
            async with self.session.post(
                f"{api}/edit/tasks", data=form, headers={"Authorization": f"Bearer {token}"}
            ) as response:
                await response.read()
                return response.status, 0
        raise ValueError(kind)


async def seed(base: str, session: aiohttp.ClientSession) -> list[bytes]:
    images = [image(seed) for seed in range(SEED_IMAGES)]
    semaphore = asyncio.Semaphore(20)

    async def one(data: bytes) -> None:
        async with (
            semaphore,
            session.post(
                f"{base}/api/v1/classify", data=data, headers={"Content-Type": "image/jpeg"}
            ) as response,
        ):
            assert response.status == 200, await response.text()

    await asyncio.gather(*(one(data) for data in images))
    return images


async def drive(base: str, pid: int, seconds: float, rate: float) -> Results:
    results = Results()
    results.rss.append((0.0, rss_mib(pid)))  # idle, before anything was used
    connector = aiohttp.TCPConnector(limit=200)
    # Long enough that every request is answered: a client timeout would leave unknown
    # whether the request was served (and logged).
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        load = Load(base, session, await seed(base, session))
        await load.login(20)
        # Warm-up: the first place lookup loads the boundary data.
        await load.one("geo-batch")
        kinds, weights = list(MIX), list(MIX.values())
        started = time.monotonic()
        results.rss.append((0.0, rss_mib(pid)))
        tasks: set[asyncio.Task[None]] = set()

        async def send(kind: str) -> None:
            sent = time.monotonic()
            try:
                status, served = await load.one(kind)
            except Exception:  # noqa: BLE001 - counted as an error
                status, served = 0, 0
            if status == 200 or status == 202:
                results.served += served
            results.samples.append((sent - started, kind, status, (time.monotonic() - sent) * 1000))

        number = 0
        next_rss = 10.0
        while (now := time.monotonic() - started) < seconds:
            due = number / rate
            if due > now:
                await asyncio.sleep(due - now)
            kind = random.Random(number).choices(kinds, weights)[0]
            task = asyncio.create_task(send(kind))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            number += 1
            if now >= next_rss:
                results.rss.append((now, rss_mib(pid)))
                next_rss += 10.0
        await asyncio.gather(*tasks)
        results.rss.append((time.monotonic() - started, rss_mib(pid)))
    return results


def report(results: Results, rows: int, seconds: float, rate: float) -> dict[str, object]:
    minutes: dict[int, list[tuple[str, int, float]]] = defaultdict(list)
    for second, kind, status, latency in results.samples:
        minutes[int(second // 60)].append((kind, status, latency))
    per_minute = []
    for minute in sorted(minutes):
        samples = minutes[minute]
        latencies = sorted(latency for _, _, latency in samples)
        errors = sum(1 for _, status, _ in samples if status not in (200, 202))
        per_minute.append(
            {
                "minute": minute + 1,
                "requests": len(samples),
                "errors": errors,
                "p50_ms": round(latencies[len(latencies) // 2], 1),
                "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 1),
            }
        )
    statuses: dict[str, int] = defaultdict(int)
    for _, kind, status, _ in results.samples:
        statuses[f"{kind} {status}"] += 1
    rss = [value for _, value in results.rss]
    return {
        "seconds": seconds,
        "rate_per_s": rate,
        "requests": len(results.samples),
        "errors": sum(1 for _, _, status, _ in results.samples if status not in (200, 202)),
        "statuses": dict(sorted(statuses.items())),
        "per_minute": per_minute,
        "rss_mib_idle": round(rss[0], 1),
        "rss_mib_start": round(rss[1], 1),
        "rss_mib_end": round(rss[-1], 1),
        "rss_mib_max": round(max(rss), 1),
        "classifications_served": results.served,
        "request_log_rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=40, help="requests per second")
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    seconds = args.minutes * 60

    workdir = Path(tempfile.mkdtemp(prefix="xintu-soak-"))
    database = workdir / "soak.db"
    llm_port, service_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XINTU_DATA_DIR": str(workdir / "data"),
        "XINTU_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "XINTU_PROVIDERS": "openai",
        "XINTU_OPENAI_API_KEY": "sk-soak",
        "XINTU_OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
        "XINTU_RATE_LIMIT_CLASSIFY": "0",
        "XINTU_RATE_LIMIT_CHECK": "0",
        "XINTU_LOCAL_MODEL_ENABLED": "false",
        "XINTU_EDIT_MAX_QUEUED_PER_USER": "1000",
        "XINTU_LOG_LEVEL": "WARNING",
    }
    if args.redis_url:
        env["XINTU_REDIS_URL"] = args.redis_url
    llm = subprocess.Popen(
        [PYTHON, "-m", "bench.fake_llm_server", str(llm_port), "0.2"], cwd=ROOT, env=env
    )
    service = subprocess.Popen(
        [PYTHON, "-m", "xintu.cli", "serve", "--port", str(service_port)], cwd=workdir, env=env
    )
    base = f"http://127.0.0.1:{service_port}"
    try:
        _wait_http(f"{base}/api/v1/health")
        results = asyncio.run(drive(base, service.pid, seconds, args.rate))
        # A clean shutdown flushes the request-log buffer.
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT COUNT(*) FROM request_log").fetchone()[0]
    finally:
        for process in (service, llm):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    # The seeding uploads are served classifications too.
    results.served += SEED_IMAGES
    summary = report(results, rows, seconds, args.rate)
    for minute in summary["per_minute"]:  # type: ignore[attr-defined]
        print(
            f"minute {minute['minute']:3d}: {minute['requests']:6d} requests, "
            f"{minute['errors']:4d} errors, p50 {minute['p50_ms']:7.1f} ms, "
            f"p99 {minute['p99_ms']:7.1f} ms"
        )
    print(
        f"RSS idle {summary['rss_mib_idle']} MiB, start (after seeding and warm-up) "
        f"{summary['rss_mib_start']} MiB, end {summary['rss_mib_end']} MiB, "
        f"max {summary['rss_mib_max']} MiB"
    )
    print(
        f"requests {summary['requests']}, errors {summary['errors']}; classifications served "
        f"{summary['classifications_served']}, request_log rows {summary['request_log_rows']} "
        f"(ratio {rows / max(1, summary['classifications_served']):.4f})"  # type: ignore[arg-type]
    )
    print(json.dumps(summary))


def _wait_http(url: str, timeout_s: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


if __name__ == "__main__":
    main()
