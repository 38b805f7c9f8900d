"""Resident memory of the service with the local models and the places data loaded.

Replays what the album page does on first use against `xintu serve` (SQLite, no API key:
the local models answer): batch-check-cache of the photos' hashes, classify/batch of the
photos (eight evaluation photos, sent at most 1,600 px as the page compresses them), then
geo/locate/batch of 200 points. Prints the server's RSS after each step, then where the
resident memory is (from /proc/<pid>/smaps: anonymous heap vs each shared library).

The data directory is kept between two service starts: the first start converts the image
model to ONNX once (``first start``), the second is what every later start looks like.
Then, in a fresh interpreter with tracemalloc on, the same components are loaded one by one
to show the Python-level allocations of each (ONNX Runtime's own memory is native and shows
only in RSS).

    .venv/bin/python -m bench.resident_memory
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
from PIL import Image

from bench.classify import ROOT, free_port, wait_http

PYTHON = sys.executable
EVAL = ROOT / "tests" / "fixtures" / "images" / "local_eval"
PHOTOS = [
    "pets/chelsea.jpg",
    "foods/coffee.jpg",
    "single_person/astronaut.jpg",
    "social_activities/group_3_plain_1.jpg",
    "screenshot/phone_chat_1080x2340.png",
    "idcard/idcard_front_1.jpg",
    "travel_scenery/china.jpg",
    "other/rocket.jpg",
]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def smaps_breakdown(pid: int) -> list[tuple[str, float]]:
    """RSS per mapping name (shared libraries by file name, the rest as heap/anonymous)."""
    totals: dict[str, float] = defaultdict(float)
    name = "[anonymous]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields[0]) > 8 and ":" not in fields[0]:
            path = fields[5] if len(fields) > 5 else ""
            name = Path(path).name if path.startswith("/") else (path or "[anonymous]")
        elif fields[0] == "Rss:":
            totals[name] += int(fields[1]) / 1024
    return sorted(totals.items(), key=lambda item: -item[1])


def compressed(path: Path) -> bytes:
    image = Image.open(path)
    image.thumbnail((1600, 1600))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def album_first_use(base: str, pid: int) -> list[tuple[str, float]]:
    steps = [("started (idle)", rss_mib(pid))]
    photos = [compressed(EVAL / name) for name in PHOTOS]
    hashes = [hashlib.sha256(data).hexdigest() for data in photos]
    rng = random.Random(1)
    points = [
        {"latitude": rng.uniform(20, 45), "longitude": rng.uniform(100, 122)} for _ in range(200)
    ]
    with httpx.Client(base_url=base, timeout=600) as client:
        response = client.post("/api/v1/classify/batch-check-cache", json={"image_hashes": hashes})
        assert response.status_code == 200, response.text
        steps.append(("batch-check-cache", rss_mib(pid)))
        response = client.post(
            "/api/v1/classify/batch",
            files=[("images", (f"{i}.jpg", d, "image/jpeg")) for i, d in enumerate(photos)],
            data={"image_hashes": str(hashes).replace("'", '"')},
        )
        assert response.status_code == 200, response.text
        assert response.json()["success_count"] == 8, response.text
        steps.append(("classify/batch (local models loaded)", rss_mib(pid)))
        response = client.post("/api/v1/geo/locate/batch", json={"points": points})
        assert response.status_code == 200, response.text
        steps.append(("geo/locate/batch (places loaded)", rss_mib(pid)))
    return steps


def serve_and_measure(data_dir: Path, label: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XINTU_DATA_DIR": str(data_dir),
        "XINTU_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/bench.db",
        "XINTU_LOG_LEVEL": "WARNING",
        "XINTU_RATE_LIMIT_CLASSIFY": "0",
        "XINTU_DASHSCOPE_API_KEY": "",
        "XINTU_OPENAI_API_KEY": "",
    }
    service = subprocess.Popen(
        [PYTHON, "-m", "xintu.cli", "serve", "--port", str(port)], cwd=data_dir, env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/v1/health", timeout_s=180)
        print(f"\n{label}: RSS of the service process")
        for step, value in album_first_use(base, service.pid):
            print(f"  {step:40s} {value:7.0f} MiB")
        time.sleep(1)
        print(f"  {'after 1 s':40s} {rss_mib(service.pid):7.0f} MiB")
        if label.startswith("second"):
            print("  where it is (/proc/<pid>/smaps, RSS by mapping):")
            for name, value in smaps_breakdown(service.pid)[:14]:
                print(f"    {name:48s} {value:7.1f} MiB")
    finally:
        service.terminate()
        service.wait(timeout=60)


TRACE = """
import asyncio, sys, time, tracemalloc
from pathlib import Path
from collections import defaultdict

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

def by_package(snapshot):
    sizes = defaultdict(int)
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        key = name.split("site-packages/")[-1].split("/")[0] if "site-packages" in name else (
            "xintu" if "/xintu/" in name else "stdlib/other")
        sizes[key] += stat.size
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:6]

tracemalloc.start()
steps = []
def note(label):
    current, _ = tracemalloc.get_traced_memory()
    steps.append((label, rss(), current / 2**20, by_package(tracemalloc.take_snapshot())))

note("interpreter")
import xintu.main  # noqa
note("import xintu.main (FastAPI, SQLAlchemy, Pillow, numpy, ...)")
from xintu.inference.local import LocalClassifier
from xintu.images.validation import prepare_image
local = LocalClassifier(Path(sys.argv[1]))
asyncio.run(local.load())
note("local models loaded (ONNX Runtime sessions, OCR)")
image = prepare_image(Path(sys.argv[2]).read_bytes(), 40_000_000)
asyncio.run(local.classify(image))
note("one local classification")
from xintu.geo import service
service.locate(31.23, 121.47)
note("places loaded (boundaries, cities)")
for label, rss_mib, traced, top in steps:
    tops = ", ".join(f"{name} {size / 2**20:.0f}" for name, size in top if size > 2**20)
    print(f"  {label:58s} RSS {rss_mib:6.0f} MiB  Python heap {traced:6.0f} MiB  [{tops}]")
local.close()
"""


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="xintu-bench-rss-"))
    try:
        serve_and_measure(data_dir, "first start (converts the image model once)")
        serve_and_measure(data_dir, "second start (every later start)")
        print("\nPython-level allocations per component (tracemalloc, fresh interpreter):")
        subprocess.run(
            [PYTHON, "-c", TRACE, str(data_dir), str(EVAL / PHOTOS[0])],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
