"""Throughput of ``xintu classify`` on a folder of generated photos.

Starts the service under uvicorn (SQLite, the fake OpenAI-compatible LLM as provider) on a
free port, generates N camera-sized JPEGs, and runs the folder client three times:
  1. cold: nothing known, every photo compressed and uploaded
  2. warm: a new state file, so every photo is a cache hit (one check request per 1,000)
  3. resumed: the same state file, nothing asked at all
Prints photos/s and bytes uploaded against the folder's size.

    PYTHONPATH=. python bench/cli_folder.py --photos 1000
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.fake_llm import COLOURS, FakeLLM  # noqa: E402
from xintu.categories import Category  # noqa: E402
from xintu.clients.folder import Options, classify_paths  # noqa: E402
from xintu.config import Settings  # noqa: E402
from xintu.main import create_app  # noqa: E402
from xintu.migrations import upgrade_to_head_async  # noqa: E402


def textures(count: int, size: tuple[int, int]) -> list[Image.Image]:
    """A few photo-like textures (blurred colour fields with grain), made once."""
    result = []
    for seed in range(count):
        rng = random.Random(seed)
        small_size = (size[0] // 16, size[1] // 16)
        small = Image.frombytes("RGB", small_size, rng.randbytes(small_size[0] * small_size[1] * 3))
        image = small.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
        grain = Image.effect_noise(size, 24).convert("RGB")
        result.append(Image.blend(image, grain, 0.18))
    return result


def camera_like_jpeg(seed: int, base: Image.Image) -> bytes:
    """A distinct photo-sized JPEG: a texture with its own marks and category colour."""
    rng = random.Random(seed)
    image = base.copy()
    for _ in range(6):
        x, y = rng.randrange(image.width - 200), rng.randrange(image.height - 200)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        image.paste(colour, (x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 200)))
    category = list(Category)[seed % len(Category)]
    image.paste(COLOURS[category], (0, 0, 48, 48))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def generate(folder: Path, count: int, size: tuple[int, int]) -> int:
    total = 0
    bases = textures(8, size)
    for index in range(count):
        path = folder / f"day{index % 10}" / f"IMG_{index:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = camera_like_jpeg(index, bases[index % len(bases)])
        path.write_bytes(data)
        total += len(data)
    return total


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--llm-delay", type=float, default=0.0, help="seconds per fake LLM call")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path("data/bench"))
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="cli-folder-", dir=args.workdir))
    folder = workdir / "photos"
    started = time.perf_counter()
    folder_bytes = generate(folder, args.photos, (args.width, args.height))
    print(
        f"generated {args.photos} photos of {args.width}x{args.height}, "
        f"{folder_bytes / 1e6:.1f} MB, in {time.perf_counter() - started:.1f} s"
    )

    fake = FakeLLM(delay_s=args.llm_delay, keep_requests=False)
    await fake.start()
    database_url = f"sqlite+aiosqlite:///{workdir / 'xintu.db'}"
    await upgrade_to_head_async(database_url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        data_dir=workdir / "data",
        local_model_enabled=False,
        rate_limit_classify="0",
        rate_limit_check="0",
        log_level="WARNING",
        providers="openai",
        openai_api_key="sk-bench",
        openai_base_url=fake.base_url,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_config=None, access_log=False, loop="asyncio")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def options(state: str) -> Options:
        return Options(
            server=url,
            state_path=workdir / state,
            workers=args.workers,
            concurrency=args.concurrency,
        )

    rows = []
    for label, state in (
        ("cold (all uploaded)", "a.jsonl"),
        ("warm (all cache hits)", "b.jsonl"),
        ("resumed (state file)", "b.jsonl"),
    ):
        report = await classify_paths([folder], options(state))
        stats = report.stats
        rows.append((label, stats))
        assert stats.failed == 0
        assert not report.incomplete

    print(
        f"\nfake LLM delay {args.llm_delay * 1000:.0f} ms, {args.workers} compress workers, "
        f"{args.concurrency} uploads in flight\n"
    )
    print("| run | photos | time s | photos/s | uploaded | bytes uploaded | of folder | requests |")
    print("|---|---|---|---|---|---|---|---|")
    for label, stats in rows:
        print(
            f"| {label} | {stats.images} | {stats.elapsed_s:.1f} | {stats.photos_per_s:.0f} | "
            f"{stats.uploaded} | {stats.upload_bytes / 1e6:.1f} MB | "
            f"{stats.upload_bytes / stats.folder_bytes:.1%} | "
            f"{stats.check_requests} check + {stats.upload_requests} upload |"
        )
    print(f"\nfolder size {folder_bytes / 1e6:.1f} MB; LLM calls {fake.calls}")
    server.should_exit = True
    thread.join(10)
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
