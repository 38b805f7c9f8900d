"""Rows in request_log vs classifications served, under the load that used to drop rows.

Starts the service (one uvicorn worker, SQLite, a fake LLM) as bench/classify.py does,
caches 1,000 images, then keeps 50 connections posting batch-check-cache with those 1,000
hashes (1,000 hits per request) for ``--seconds``. Stops the service cleanly (the writer
flushes) and compares the hits the responses reported with the rows in the table. Also
prints the writer's backpressure counters from /metrics taken just before stopping.

    .venv/bin/python -m bench.request_log [--seconds 8] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import orjson

from bench.classify import ROOT, free_port, seed_hashes, wait_http

PYTHON = sys.executable


async def batch_load(url: str, hashes: list[str], seconds: float, connections: int) -> dict:  # type: ignore[type-arg]
    body = orjson.dumps({"image_hashes": hashes})
    served = requests = failed = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal served, requests, failed
        while time.monotonic() < deadline:
            started = time.perf_counter()
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                payload = await response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            requests += 1
            if response.status == 200:
                served += orjson.loads(payload)["cached_count"]
            else:
                failed += 1

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "requests": requests,
        "non_200": failed,
        "served": served,
        "req_per_s": round(requests / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 1),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 1),
    }


def writer_metrics(base: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("xintu_request_log_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="xintu-bench-log-"))
    database = workdir / "bench.db"
    llm_port, service_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XINTU_DATA_DIR": str(workdir / "data"),
        "XINTU_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "XINTU_PROVIDERS": "openai",
        "XINTU_OPENAI_API_KEY": "sk-bench",
        "XINTU_OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
        "XINTU_RATE_LIMIT_CLASSIFY": "0",
        "XINTU_RATE_LIMIT_CHECK": "0",
        "XINTU_LOCAL_MODEL_ENABLED": "false",
        "XINTU_LOG_LEVEL": "WARNING",
    }
    fake_llm = subprocess.Popen(
        [PYTHON, "-m", "bench.fake_llm_server", str(llm_port), "0.2"], cwd=ROOT, env=env
    )
    service = subprocess.Popen(
        [PYTHON, "-m", "xintu.cli", "serve", "--port", str(service_port)], cwd=workdir, env=env
    )
    try:
        base = f"http://127.0.0.1:{service_port}"
        wait_http(f"{base}/api/v1/health", timeout_s=240)
        hashes = asyncio.run(seed_hashes(base, 1000))
        result = asyncio.run(
            batch_load(
                f"{base}/api/v1/classify/batch-check-cache", hashes, args.seconds, args.connections
            )
        )
        counters = writer_metrics(base)
        service.terminate()  # a clean shutdown flushes the writer
        service.wait(timeout=120)
        with sqlite3.connect(database) as connection:
            (rows,) = connection.execute(
                "SELECT COUNT(*) FROM request_log WHERE endpoint = 'batch-check-cache'"
            ).fetchone()
    finally:
        for process in (service, fake_llm):
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"batch-check-cache, 1000 hits/request, {args.connections} connections, "
        f"{args.seconds:g} s: {result['requests']} requests ({result['req_per_s']} req/s, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms), non-200 {result['non_200']}"
    )
    for name, value in counters.items():
        print(f"  {name:52s} {value:12.0f}")
    print(f"classifications served (sum of cached_count) {result['served']:>10}")
    print(f"rows in request_log (batch-check-cache)      {rows:>10}")
    print(f"rows / served                                 {rows / max(1, result['served']):.4f}")
    print(orjson.dumps(result | {"rows": rows, "writer": counters}).decode())


if __name__ == "__main__":
    main()
