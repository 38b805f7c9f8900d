"""Throughput of the classification endpoints against bare FastAPI endpoints, same run.

Starts the service (one uvicorn worker, SQLite, a fake LLM answering in 200 ms), a bare
FastAPI app (bench/bare_app.py) and drives both on loopback: wrk for the cache paths, an
aiohttp load generator with distinct images for the remote path. Prints requests/s, p50 and
p99 and the ratios the targets in docs/PERFORMANCE.md are written in.

    .venv/bin/python bench/classify.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout_s: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def jpeg_of_size(target_bytes: int, seed: int) -> bytes:
    """A noisy JPEG of roughly ``target_bytes`` (noise does not compress)."""
    rng = random.Random(seed)
    side = 300
    while True:
        image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        if buffer.tell() >= target_bytes:
            return buffer.getvalue()
        side = int(side * 1.15)


def small_jpeg(seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (64, 48), (0, 250, 0))
    image.putpixel((40, 30), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    image.putpixel((50, 20), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def multipart(image: bytes, image_hash: str) -> tuple[bytes, str]:
    boundary = "xintubenchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image_hash"\r\n\r\n'
            f'{image_hash}\r\n--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            f'filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def wrk(
    url: str,
    seconds: int,
    body_file: Path | None,
    content_type: str | None,
    headers: dict[str, str] | None = None,
    connections: int = 50,
) -> dict[str, float]:
    script = None
    if body_file is not None:
        lines = [
            'wrk.method = "POST"',
            f'local f = io.open("{body_file}", "rb")',
            'wrk.body = f:read("*all")',
            "f:close()",
            f'wrk.headers["Content-Type"] = "{content_type}"',
        ]
        for name, value in (headers or {}).items():
            lines.append(f'wrk.headers["{name}"] = "{value}"')
        script = body_file.with_suffix(".lua")
        script.write_text("\n".join(lines))
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "p50_ms": _wrk_latency(output, "50%"),
        "p99_ms": _wrk_latency(output, "99%"),
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def _wrk_latency(output: str, label: str) -> float:
    match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output)
    assert match is not None
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def remote_load(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    """Distinct images, so every request is a cache miss that reaches the fake LLM."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10_000_000))
    deadline = time.monotonic() + seconds
    images = [small_jpeg(1_000_000 + i) for i in range(20_000)]

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            data = images[next(counter) % len(images)]
            started = time.perf_counter()
            async with session.post(
                url, data=data, headers={"Content-Type": "image/jpeg"}
            ) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "errors": float(errors),
    }


async def seed_hashes(base: str, count: int) -> list[str]:
    """Classify ``count`` small images so their hashes are cached."""
    hashes = []
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        semaphore = asyncio.Semaphore(100)

        async def one(seed: int) -> None:
            data = small_jpeg(seed)
            async with (
                semaphore,
                session.post(
                    f"{base}/api/v1/classify", data=data, headers={"Content-Type": "image/jpeg"}
                ) as response,
            ):
                assert response.status == 200, await response.text()
                hashes.append(hashlib.sha256(data).hexdigest())

        await asyncio.gather(*(one(seed) for seed in range(count)))
    return hashes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (or `make system-deps`)")

    workdir = Path(tempfile.mkdtemp(prefix="xintu-bench-"))
    llm_port, service_port, bare_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XINTU_DATA_DIR": str(workdir / "data"),
        "XINTU_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bench.db",
        "XINTU_PROVIDERS": "openai",
        "XINTU_OPENAI_API_KEY": "sk-bench",
        "XINTU_OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
        "XINTU_RATE_LIMIT_CLASSIFY": "0",
        "XINTU_RATE_LIMIT_CHECK": "0",
        "XINTU_LOCAL_MODEL_ENABLED": "false",
        "XINTU_LOG_LEVEL": "WARNING",
    }
    processes = [
        subprocess.Popen(
            [PYTHON, "-m", "bench.fake_llm_server", str(llm_port), "0.2"], cwd=ROOT, env=env
        ),
        subprocess.Popen(
            [PYTHON, "-m", "xintu.cli", "serve", "--port", str(service_port)], cwd=workdir, env=env
        ),
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        ),
    ]
    try:
        service = f"http://127.0.0.1:{service_port}"
        bare = f"http://127.0.0.1:{bare_port}"
        wait_http(f"{service}/api/v1/health")
        wait_http(f"{bare}/bare")
        results = run_scenarios(service, bare, workdir, args.seconds)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    for name, row in results["results"].items():  # type: ignore[attr-defined]
        print(
            f"{name:48s} {row['rps']:9.1f} req/s  p50 {row['p50_ms']:7.1f} ms  "
            f"p99 {row['p99_ms']:7.1f} ms  non-2xx {int(row['errors'])}"
        )
    for name, value in results["ratios"].items():  # type: ignore[attr-defined]
        print(f"{name:64s} {value:.3f}")
    print(json.dumps(results))


def run_scenarios(service: str, bare: str, workdir: Path, seconds: int) -> dict[str, object]:
    hashes = asyncio.run(seed_hashes(service, 1000))
    photo = jpeg_of_size(400_000, seed=7)
    photo_hash = hashlib.sha256(b"original " + photo).hexdigest()
    body, content_type = multipart(photo, photo_hash)
    upload = workdir / "upload.bin"
    upload.write_bytes(body)
    raw = workdir / "raw.bin"
    raw.write_bytes(photo)
    # Put the 400 KB photo in the cache under its original's hash.
    subprocess.run(
        [
            "curl",
            "-sf",
            "-o",
            "/dev/null",
            "-H",
            f"Content-Type: {content_type}",
            "--data-binary",
            f"@{upload}",
            f"{service}/api/v1/classify",
        ],
        check=True,
    )
    one = workdir / "one.json"
    one.write_text(json.dumps({"image_hash": hashes[0]}))
    batch = workdir / "batch.json"
    batch.write_text(json.dumps({"image_hashes": hashes}))

    rows: dict[str, dict[str, float]] = {}
    rows["bare GET"] = wrk(f"{bare}/bare", seconds, None, None)
    rows["bare POST json"] = wrk(f"{bare}/bare/json", seconds, one, "application/json")
    rows["check-cache hit"] = wrk(
        f"{service}/api/v1/classify/check-cache", seconds, one, "application/json"
    )
    rows["bare POST 1000 hashes"] = wrk(
        f"{bare}/bare/json-batch", seconds, batch, "application/json"
    )
    rows["batch-check-cache 1000"] = wrk(
        f"{service}/api/v1/classify/batch-check-cache", seconds, batch, "application/json"
    )
    rows["bare upload+hash multipart 400KB"] = wrk(
        f"{bare}/bare/upload", seconds, upload, content_type
    )
    rows["classify hit multipart 400KB"] = wrk(
        f"{service}/api/v1/classify", seconds, upload, content_type
    )
    rows["bare upload+hash raw 400KB"] = wrk(f"{bare}/bare/upload", seconds, raw, "image/jpeg")
    rows["classify hit raw 400KB"] = wrk(
        f"{service}/api/v1/classify", seconds, raw, "image/jpeg", {"X-Image-Hash": photo_hash}
    )
    rows["remote path (fake LLM 200 ms, 100 in flight)"] = asyncio.run(
        remote_load(f"{service}/api/v1/classify", seconds, 100)
    )

    def ratio(service_row: str, bare_row: str) -> float:
        return round(rows[service_row]["rps"] / rows[bare_row]["rps"], 3)

    return {
        "results": {name: {k: round(v, 2) for k, v in row.items()} for name, row in rows.items()},
        "ratios": {
            "check-cache hit / bare POST json (target >= 0.40)": ratio(
                "check-cache hit", "bare POST json"
            ),
            "check-cache hit / bare GET": ratio("check-cache hit", "bare GET"),
            "batch-check-cache 1000 / bare POST 1000 hashes": ratio(
                "batch-check-cache 1000", "bare POST 1000 hashes"
            ),
            "classify hit multipart / bare upload+hash (target >= 0.40)": ratio(
                "classify hit multipart 400KB", "bare upload+hash multipart 400KB"
            ),
            "classify hit raw / bare upload+hash raw (target >= 0.40)": ratio(
                "classify hit raw 400KB", "bare upload+hash raw 400KB"
            ),
            "remote path / 500 req/s bound (target >= 0.70)": round(
                rows["remote path (fake LLM 200 ms, 100 in flight)"]["rps"] / 500, 3
            ),
        },
    }


if __name__ == "__main__":
    main()
