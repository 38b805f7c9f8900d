"""Peak resident memory of the service under a batch of eight 6,300×6,300 PNGs.

Each PNG is ~40 MP (just under XINTU_MAX_IMAGE_PIXELS) and a few hundred KB on the wire; a
batch decodes them concurrently unless the decode budget (XINTU_DECODE_BUDGET_PIXELS)
queues them. For each budget given, starts the service (SQLite, one uvicorn worker), warms
it up with one small classification, reads its RSS ("idle"), posts the batch and samples
RSS every 10 ms until the answer (and reads the kernel's peak, VmHWM, reset before the
batch). Two paths: the remote LLM (a fake one answering at once; large images are
re-encoded before sending) and the local models (XINTU_INFERENCE_MODE=local_only).

    .venv/bin/python -m bench.decode_memory [--budgets 40000000,1000000000] [--paths remote,local]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from bench.classify import ROOT, free_port, wait_http

PYTHON = sys.executable
SIDE = 6300


def big_png(seed: int) -> bytes:
    """A 6,300×6,300 PNG with some structure (boxes); distinct per seed. Slow to make, so
    kept in the temporary directory between runs."""
    kept = Path(tempfile.gettempdir()) / f"xintu-bench-{SIDE}-{seed}.png"
    if kept.exists():
        return kept.read_bytes()
    rng = random.Random(seed)
    image = Image.new("RGB", (SIDE, SIDE), (rng.randrange(256), 120, 60))
    draw = ImageDraw.Draw(image)
    for _ in range(400):
        x, y = rng.randrange(SIDE), rng.randrange(SIDE)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x, y, x + rng.randrange(50, 900), y + rng.randrange(50, 900)), colour)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=9)
    kept.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def small_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 200, 90)).save(buffer, "JPEG")
    return buffer.getvalue()


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def run(path: str, budget: int, pngs: list[bytes], llm_port: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="xintu-bench-mem-"))
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XINTU_DATA_DIR": str(workdir / "data"),
        "XINTU_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bench.db",
        "XINTU_RATE_LIMIT_CLASSIFY": "0",
        "XINTU_LOG_LEVEL": "WARNING",
        "XINTU_DECODE_BUDGET_PIXELS": str(budget),
    }
    if path == "remote":
        env |= {
            "XINTU_PROVIDERS": "openai",
            "XINTU_OPENAI_API_KEY": "sk-bench",
            "XINTU_OPENAI_BASE_URL": f"http://127.0.0.1:{llm_port}/v1",
            "XINTU_LOCAL_MODEL_ENABLED": "false",
        }
    else:
        env |= {"XINTU_INFERENCE_MODE": "local_only", "XINTU_LOCAL_PRELOAD": "true"}
    service = subprocess.Popen(
        [PYTHON, "-m", "xintu.cli", "serve", "--port", str(port)], cwd=workdir, env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v1/health", timeout_s=180)
        with httpx.Client(base_url=base, timeout=600) as client:
            warm = client.post(
                "/api/v1/classify", content=small_jpeg(), headers={"Content-Type": "image/jpeg"}
            )
            assert warm.status_code == 200, warm.text
            time.sleep(1)
            idle = status_kib(service.pid, "VmRSS")
            Path(f"/proc/{service.pid}/clear_refs").write_text("5")  # resets VmHWM
            peak = idle
            done = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, status_kib(service.pid, "VmRSS"))
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            response = client.post(
                "/api/v1/classify/batch",
                files=[("images", (f"{i}.png", data, "image/png")) for i, data in enumerate(pngs)],
            )
            elapsed = time.perf_counter() - started
            done.set()
            sampler.join()
            hwm = status_kib(service.pid, "VmHWM")
        body = response.json()
        assert response.status_code == 200, response.text
        return {
            "idle_mib": idle / 1024,
            "peak_mib": max(peak, hwm) / 1024,
            "above_idle_mib": (max(peak, hwm) - idle) / 1024,
            "seconds": elapsed,
            "succeeded": body["success_count"],
        }
    finally:
        service.terminate()
        service.wait(timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", default="40000000,1000000000")
    parser.add_argument("--paths", default="remote,local")
    args = parser.parse_args()
    pngs = [big_png(seed) for seed in range(8)]
    print(f"batch: 8 PNGs of {SIDE}x{SIDE}, {sum(map(len, pngs)) / 1e6:.2f} MB in total")
    llm_port = free_port()
    fake_llm = subprocess.Popen(
        [PYTHON, "-m", "bench.fake_llm_server", str(llm_port), "0"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for path in args.paths.split(","):
            for budget in (int(value) for value in args.budgets.split(",")):
                row = run(path, budget, pngs, llm_port)
                print(
                    f"{path:6s} budget {budget / 1e6:7.0f} MP: idle {row['idle_mib']:6.0f} MiB  "
                    f"peak {row['peak_mib']:6.0f} MiB  above idle {row['above_idle_mib']:6.0f} MiB"
                    f"  {row['seconds']:5.1f} s  {int(row['succeeded'])}/8 classified",
                    flush=True,
                )
    finally:
        fake_llm.terminate()
        fake_llm.wait(timeout=30)


if __name__ == "__main__":
    main()
