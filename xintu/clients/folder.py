"""``xintu classify``: sort a folder of photos with the bandwidth-saving flow of DESIGN §2.

The originals are hashed on this machine; the server is asked which hashes it already
knows (1,000 per request); only the misses are compressed (long edge 1024, JPEG of at most
~400 KB, in a process pool) and uploaded, 20 per request, a few requests at a time, with
retries on 429/5xx/network errors. Every finished hash is appended to a state file, so an
interrupted run continues without uploading anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import multiprocessing
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import orjson
from PIL import Image, ImageOps, UnidentifiedImageError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from xintu.categories import CATEGORY_NAMES, Category
from xintu.images.validation import prepare_image, sniff_format

CHECK_CHUNK = 1000
BATCH_SIZE = 20
LONG_EDGE = 1024
MAX_UPLOAD_BYTES = 400 * 1024
# Pixels a client will decode at most (a 200 MP panorama still fits).
CLIENT_MAX_PIXELS = 200_000_000
# Item errors the server may answer differently next time; anything else is final.
TRANSIENT_ITEM_ERRORS = {"no_classifier_available", "rate_limited", "internal_error"}
STATE_VERSION = 1
_READ_CHUNK = 1 << 20


class OrganizeMode(StrEnum):
    copy = "copy"
    link = "link"
    move = "move"


class ClientError(Exception):
    """A run cannot go on (server unreachable, local pipeline missing): shown to the user."""


# -- results ----------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What became of one distinct image (by hash)."""

    image_hash: str
    source: str  # "cache", "upload", "local", "state", "failed"
    category: str | None = None
    category_name: str | None = None
    confidence: float | None = None
    description: str | None = None
    model: str | None = None
    inference_method: str | None = None
    error_code: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.category is not None

    @classmethod
    def from_data(cls, image_hash: str, source: str, data: dict[str, Any]) -> Outcome:
        return cls(
            image_hash=image_hash,
            source=source,
            category=str(data["category"]),
            category_name=str(data.get("category_name") or CATEGORY_NAMES[data["category"]]),
            confidence=float(data["confidence"]) if data.get("confidence") is not None else None,
            description=data.get("description"),
            model=data.get("model"),
            inference_method=data.get("inference_method"),
        )

    @classmethod
    def failure(cls, image_hash: str, code: str, message: str) -> Outcome:
        return cls(image_hash=image_hash, source="failed", error_code=code, error=message)


@dataclass(slots=True)
class PhotoFile:
    path: Path
    size: int
    image_hash: str
    destination: Path | None = None


@dataclass(slots=True)
class RunStats:
    files_seen: int = 0
    non_images: int = 0
    unreadable: int = 0
    images: int = 0
    distinct_images: int = 0
    folder_bytes: int = 0
    from_state: int = 0
    cache_hits: int = 0
    uploaded: int = 0
    upload_bytes: int = 0
    upload_requests: int = 0
    check_requests: int = 0
    retries: int = 0
    local: int = 0
    failed: int = 0
    pending: int = 0
    elapsed_s: float = 0.0

    @property
    def photos_per_s(self) -> float:
        return self.images / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(slots=True)
class Report:
    files: list[PhotoFile]
    outcomes: dict[str, Outcome]
    skipped: list[Path]
    stats: RunStats
    incomplete: bool = False

    def outcome_of(self, photo: PhotoFile) -> Outcome | None:
        return self.outcomes.get(photo.image_hash)

    def category_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for photo in self.files:
            outcome = self.outcomes.get(photo.image_hash)
            if outcome is not None and outcome.category is not None:
                counts[outcome.category] += 1
        return counts

    def rows(self) -> list[dict[str, Any]]:
        """One row per image file, for ``--json``/``--csv``."""
        rows = []
        for photo in self.files:
            outcome = self.outcomes.get(photo.image_hash)
            rows.append(
                {
                    "path": str(photo.path),
                    "size_bytes": photo.size,
                    "image_hash": photo.image_hash,
                    "category": outcome.category if outcome else None,
                    "category_name": outcome.category_name if outcome else None,
                    "confidence": outcome.confidence if outcome else None,
                    "description": outcome.description if outcome else None,
                    "model": outcome.model if outcome else None,
                    "source": outcome.source if outcome else "pending",
                    "error_code": outcome.error_code if outcome else None,
                    "destination": str(photo.destination) if photo.destination else None,
                }
            )
        return rows


# -- walking and hashing ----------------------------------------------------------------


def find_images(
    paths: Iterable[Path], exclude: Sequence[Path] = ()
) -> tuple[list[Path], list[Path]]:
    """Image files under ``paths`` (by magic bytes, not by name) and the files skipped.

    Hidden files and folders are skipped, and so is anything under ``exclude`` (the
    organize target), so that a second run does not sort its own output.
    """
    excluded = [path.resolve() for path in exclude]
    images: list[Path] = []
    skipped: list[Path] = []
    seen: set[Path] = set()

    def consider(path: Path) -> None:
        resolved = path.resolve()
        if resolved in seen or any(resolved.is_relative_to(root) for root in excluded):
            return
        seen.add(resolved)
        try:
            with path.open("rb") as handle:
                head = handle.read(32)
        except OSError:
            skipped.append(path)
            return
        (images if sniff_format(head) is not None else skipped).append(path)

    for root in paths:
        if root.is_file():
            consider(root)
            continue
        if not root.is_dir():
            raise ClientError(f"{root} is neither a file nor a folder")
        for directory, subdirs, names in os.walk(root):
            subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
            for name in sorted(names):
                if not name.startswith("."):
                    candidate = Path(directory) / name
                    if candidate.is_file() and not candidate.is_symlink():
                        consider(candidate)
    return images, skipped


def hash_file(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of the original file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# -- compression (runs in worker processes) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Compressed:
    data: bytes | None
    error: str | None = None


def compress_for_upload(
    path: str, long_edge: int = LONG_EDGE, max_bytes: int = MAX_UPLOAD_BYTES
) -> Compressed:
    """The file as a JPEG of at most ``max_bytes`` with its long edge at most ``long_edge``.

    A JPEG that is already that small is sent unchanged (it is fully decoded first, so a
    corrupt file is caught here rather than on the server). Top-level so a process pool can
    pickle it.
    """
    try:
        with open(path, "rb") as handle:
            original = handle.read()
        with Image.open(io.BytesIO(original)) as opened:
            width, height = opened.size
            if width * height > CLIENT_MAX_PIXELS:
                return Compressed(None, f"{width}x{height} pixels is too large")
            orientation = opened.getexif().get(0x0112, 1)
            if (
                sniff_format(original) == "jpeg"
                and len(original) <= max_bytes
                and max(width, height) <= long_edge
                and orientation in (1, None)
            ):
                opened.load()
                return Compressed(original)
            # JPEG decodes at 1/2, 1/4 or 1/8 scale for free: a 12 MP photo never needs
            # its full resolution for a 1024 px copy.
            scale = long_edge / max(width, height)
            if scale < 1:
                target = (max(1, round(width * scale)), max(1, round(height * scale)))
                opened.draft("RGB", target)
            image = ImageOps.exif_transpose(opened)
        image.thumbnail((long_edge, long_edge), Image.Resampling.LANCZOS)
        if image.mode in ("RGBA", "LA", "P", "PA"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            image = background
        elif image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        data = b""
        for quality in (85, 75, 65, 55, 45, 35):
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality)
            data = buffer.getvalue()
            if len(data) <= max_bytes:
                break
        return Compressed(data)
    except (OSError, ValueError, SyntaxError, EOFError, UnidentifiedImageError) as exc:
        return Compressed(None, f"cannot be decoded: {exc}")
    except Image.DecompressionBombError as exc:
        return Compressed(None, str(exc))


def _init_worker() -> None:
    # Importing the validation module registers the HEIF opener in the worker process.
    import xintu.images.validation  # noqa: F401


def compression_pool(workers: int) -> ProcessPoolExecutor:
    """Workers forked from a clean fork server, not from this process: forking a process
    that runs threads (hashing, an event loop, maybe a server) can copy held locks."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["xintu.clients.folder"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker)


# -- state file ---------------------------------------------------------------------------


class StateFile:
    """Finished hashes as JSON lines; appended after every request, tolerant of a torn
    last line (a run killed mid-write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        if not self.path.exists():
            return outcomes
        with self.path.open("rb") as handle:
            for line in handle:
                try:
                    record = orjson.loads(line)
                    outcome = Outcome(**record["outcome"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
                outcomes[outcome.image_hash] = outcome
        return outcomes

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)

    def append(self, outcomes: Iterable[Outcome]) -> None:
        lines = b"".join(
            orjson.dumps({"v": STATE_VERSION, "outcome": asdict(outcome)}) + b"\n"
            for outcome in outcomes
        )
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            # A torn line from a killed run must not swallow the first new record.
            if handle.tell() > 0 and not _ends_with_newline(self.path):
                handle.write(b"\n")
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def default_state_path(target: str) -> Path:
    """``~/.cache/xintu/classify-<server>.jsonl``: one state per server (or ``local``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xintu"
    key = hashlib.sha256(target.encode()).hexdigest()[:12]
    return base / f"classify-{key}.jsonl"


# -- the server ---------------------------------------------------------------------------


Sleep = Callable[[float], Awaitable[None]]


class ApiClient:
    """The two classification endpoints a folder client needs, with retries."""

    def __init__(
        self,
        base_url: str,
        *,
        user_id: str | None = None,
        token: str | None = None,
        retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        stats: RunStats | None = None,
    ) -> None:
        headers = {"User-Agent": "xintu-classify"}
        if user_id:
            headers["X-User-ID"] = user_id
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers=headers,
            timeout=timeout_s,
            transport=transport,
        )
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.sleep = sleep
        self.stats = stats or RunStats()

    async def aclose(self) -> None:
        await self.http.aclose()

    def backoff(self, attempt: int) -> float:
        """Exponential with jitter in its upper half: 0.5 s, 1 s, 2 s … capped."""
        ceiling: float = min(self.max_backoff_s, self.backoff_s * 2.0 ** float(attempt))
        jitter: float = random.uniform(0.5, 1.0)
        return ceiling * jitter

    @staticmethod
    def retry_after(response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST with retries on 429 (honouring Retry-After), 5xx and network errors."""
        last_error = ""
        for attempt in range(self.retries + 1):
            delay: float
            try:
                response = await self.http.post(url, **kwargs)
            except httpx.TransportError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                delay = self.backoff(attempt)
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                delay = self.retry_after(response) or self.backoff(attempt)
                if response.status_code == 429:
                    delay = min(max(delay, self.backoff(attempt)), 300.0)
            if attempt < self.retries:
                self.stats.retries += 1
                await self.sleep(delay)
        attempts = self.retries + 1
        where = str(self.http.base_url).rstrip("/") + url
        raise ClientError(f"{where} failed {attempts} times: {last_error}")

    async def check_cache(self, hashes: Sequence[str]) -> list[dict[str, Any] | None]:
        """``data`` for each hash the server already knows, else None (request order)."""
        response = await self.post("/classify/batch-check-cache", json={"image_hashes": hashes})
        self.stats.check_requests += 1
        body = _json_or_error(response)
        return [item["data"] if item.get("cached") else None for item in body["items"]]

    async def classify_batch(
        self, items: Sequence[tuple[str, str, bytes]]
    ) -> list[tuple[dict[str, Any] | None, str | None, str | None]]:
        """Upload ``(image_hash, filename, jpeg)`` items; per item (data, error_code, error)."""
        files = [("images", (name, data, "image/jpeg")) for _, name, data in items]
        hashes = orjson.dumps([image_hash for image_hash, _, _ in items]).decode()
        response = await self.post("/classify/batch", files=files, data={"image_hashes": hashes})
        self.stats.upload_requests += 1
        self.stats.upload_bytes += sum(len(data) for _, _, data in items)
        if response.status_code >= 400:
            code, message = _error_of(response)
            return [(None, code, message)] * len(items)
        body = response.json()
        return [
            (item.get("data"), item.get("error_code"), item.get("error"))
            for item in sorted(body["items"], key=lambda item: item["index"])
        ]


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
        return str(body.get("code", "http_error")), str(body.get("detail", response.text[:200]))
    except ValueError:
        return "http_error", f"HTTP {response.status_code}: {response.text[:200]}"


def _json_or_error(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        code, message = _error_of(response)
        raise ClientError(f"the server answered {response.status_code} {code}: {message}")
    body: dict[str, Any] = response.json()
    return body


# -- the run ------------------------------------------------------------------------------


@dataclass
class Options:
    server: str = "http://127.0.0.1:8000"
    local: bool = False
    state_path: Path | None = None
    fresh: bool = False
    concurrency: int = 4
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    batch_size: int = BATCH_SIZE
    max_uploads: int | None = None
    user_id: str | None = None
    token: str | None = None
    retries: int = 6
    exclude: Sequence[Path] = ()
    data_dir: Path | None = None


class _Bars:
    """Progress bars when a console is given, otherwise nothing."""

    def __init__(self, console: Console | None) -> None:
        self.progress = (
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            if console is not None
            else None
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bars:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def add(self, key: str, description: str, total: int) -> None:
        if self.progress is not None:
            self.tasks[key] = self.progress.add_task(description, total=total)

    def advance(self, key: str, amount: int = 1) -> None:
        if self.progress is not None and key in self.tasks:
            self.progress.advance(self.tasks[key], amount)


async def classify_paths(
    paths: Sequence[Path],
    options: Options,
    console: Console | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Report:
    """Classify every image under ``paths``; results are also appended to the state file."""
    started = time.perf_counter()
    stats = RunStats()
    images, skipped = find_images(paths, options.exclude)
    stats.files_seen = len(images) + len(skipped)
    stats.non_images = len(skipped)

    state = StateFile(
        options.state_path or default_state_path("local" if options.local else options.server)
    )
    if options.fresh:
        state.reset()
    known = state.load()
    loop = asyncio.get_running_loop()

    with _Bars(console) as bars, ThreadPoolExecutor(max_workers=4) as threads:
        bars.add("hash", "计算哈希 hashing", len(images))

        async def hashed(path: Path) -> PhotoFile | None:
            try:
                size, image_hash = await loop.run_in_executor(threads, hash_file, path)
            except OSError:
                stats.unreadable += 1
                skipped.append(path)
                return None
            finally:
                bars.advance("hash")
            return PhotoFile(path, size, image_hash)

        photos = [photo for photo in await asyncio.gather(*map(hashed, images)) if photo]
        stats.images = len(photos)
        stats.folder_bytes = sum(photo.size for photo in photos)
        first_path: dict[str, Path] = {}
        for photo in photos:
            first_path.setdefault(photo.image_hash, photo.path)
        stats.distinct_images = len(first_path)

        outcomes: dict[str, Outcome] = {}
        todo: list[str] = []
        for image_hash in first_path:
            if image_hash in known:
                outcomes[image_hash] = known[image_hash]
                stats.from_state += 1
            else:
                todo.append(image_hash)
        bars.add("classify", "分类 classifying", len(first_path))
        bars.advance("classify", stats.from_state)

        runner = _Runner(options, stats, state, outcomes, bars, first_path)
        if options.local:
            await runner.run_local(todo)
        else:
            client = ApiClient(
                options.server,
                user_id=options.user_id,
                token=options.token,
                retries=options.retries,
                transport=transport,
                stats=stats,
            )
            try:
                await runner.run_remote(client, todo)
            finally:
                await client.aclose()

    stats.failed = sum(1 for outcome in outcomes.values() if not outcome.ok)
    stats.pending = len(first_path) - len(outcomes)
    stats.elapsed_s = time.perf_counter() - started
    return Report(photos, outcomes, skipped, stats, incomplete=stats.pending > 0)


class _Runner:
    def __init__(
        self,
        options: Options,
        stats: RunStats,
        state: StateFile,
        outcomes: dict[str, Outcome],
        bars: _Bars,
        first_path: dict[str, Path],
    ) -> None:
        self.options = options
        self.stats = stats
        self.state = state
        self.outcomes = outcomes
        self.bars = bars
        self.first_path = first_path

    def finish(self, finished: Sequence[Outcome]) -> None:
        for outcome in finished:
            self.outcomes[outcome.image_hash] = outcome
        self.state.append(finished)
        self.bars.advance("classify", len(finished))

    def _limit(self, todo: list[str]) -> list[str]:
        if self.options.max_uploads is None:
            return todo
        return todo[: max(0, self.options.max_uploads)]

    async def run_remote(self, client: ApiClient, todo: list[str]) -> None:
        misses: list[str] = []
        for start in range(0, len(todo), CHECK_CHUNK):
            chunk = todo[start : start + CHECK_CHUNK]
            results = await client.check_cache(chunk)
            hits = [
                Outcome.from_data(image_hash, "cache", data)
                for image_hash, data in zip(chunk, results, strict=True)
                if data is not None
            ]
            misses.extend(h for h, data in zip(chunk, results, strict=True) if data is None)
            self.stats.cache_hits += len(hits)
            self.finish(hits)
        if misses:
            await self._upload_misses(client, self._limit(misses))

    async def _upload_misses(self, client: ApiClient, todo: list[str]) -> None:
        """Compress in the pool, a bounded number ahead of the uploads, while a few uploaders
        send batches; the first fatal error cancels the rest (TaskGroup)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(
            maxsize=self.options.batch_size * self.options.concurrency * 2
        )
        ahead = asyncio.Semaphore(max(2, self.options.workers * 2))
        pool = compression_pool(min(self.options.workers, max(1, len(todo))))

        async def compress(image_hash: str) -> None:
            async with ahead:
                result: Compressed = await loop.run_in_executor(
                    pool, compress_for_upload, str(self.first_path[image_hash])
                )
            if result.data is None:
                self.finish([Outcome.failure(image_hash, "invalid_image", str(result.error))])
            else:
                await queue.put((image_hash, result.data))

        async def produce() -> None:
            await asyncio.gather(*(compress(image_hash) for image_hash in todo))
            for _ in range(self.options.concurrency):
                await queue.put(None)

        async def uploader() -> None:
            done = False
            while not done:
                batch: list[tuple[str, bytes]] = []
                while len(batch) < self.options.batch_size:
                    item = await queue.get()
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                if batch:
                    await self._upload(client, batch)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for _ in range(self.options.concurrency):
                    group.create_task(uploader())
        except* ClientError as errors:
            raise errors.exceptions[0] from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    async def _upload(self, client: ApiClient, batch: list[tuple[str, bytes]]) -> None:
        """One batch; items with a transient error are sent again after a pause."""
        pending = batch
        for attempt in range(client.retries + 1):
            results = await client.classify_batch(
                [(h, self.first_path[h].name, data) for h, data in pending]
            )
            self.stats.uploaded += len(pending)
            finished: list[Outcome] = []
            again: list[tuple[str, bytes]] = []
            for (image_hash, data), (answer, code, message) in zip(pending, results, strict=True):
                if answer is not None:
                    finished.append(Outcome.from_data(image_hash, "upload", answer))
                elif code in TRANSIENT_ITEM_ERRORS and attempt < client.retries:
                    again.append((image_hash, data))
                else:
                    finished.append(
                        Outcome.failure(image_hash, code or "error", message or "failed")
                    )
            self.finish(finished)
            if not again:
                return
            pending = again
            client.stats.retries += 1
            await client.sleep(client.backoff(attempt))

    async def run_local(self, todo: list[str]) -> None:
        """Classify in this process with the offline pipeline (no server, no cache)."""
        classifier = load_local_classifier(self.options.data_dir)
        todo = self._limit(todo)
        if not todo:
            return
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(max(1, self.options.concurrency))
        with compression_pool(min(self.options.workers, len(todo))) as pool:

            async def one(image_hash: str) -> None:
                async with slots:
                    result: Compressed = await loop.run_in_executor(
                        pool, compress_for_upload, str(self.first_path[image_hash])
                    )
                    if result.data is None:
                        outcome = Outcome.failure(image_hash, "invalid_image", str(result.error))
                    else:
                        try:
                            image = await asyncio.to_thread(
                                prepare_image, result.data, CLIENT_MAX_PIXELS
                            )
                            prediction = await classifier.classify(image)
                        except Exception as exc:  # noqa: BLE001 - one photo never stops a run
                            outcome = Outcome.failure(image_hash, "local_failed", str(exc))
                        else:
                            self.stats.local += 1
                            outcome = Outcome(
                                image_hash=image_hash,
                                source="local",
                                category=prediction.category.value,
                                category_name=CATEGORY_NAMES[prediction.category],
                                confidence=prediction.confidence,
                                description=prediction.description,
                                model=prediction.model,
                                inference_method="local",
                            )
                    self.finish([outcome])

            await asyncio.gather(*(one(image_hash) for image_hash in todo))


def load_local_classifier(data_dir: Path | None) -> Any:
    """``xintu.inference.local.LocalClassifier``, imported only when ``--local`` is used."""
    try:
        from importlib import import_module

        module = import_module("xintu.inference.local")
        factory = module.LocalClassifier
    except (ImportError, AttributeError) as exc:
        raise ClientError(
            "--local needs the offline pipeline (xintu.inference.local), which is not "
            f"installed here ({exc}). Classify against a server with --server URL instead."
        ) from exc
    if data_dir is None:
        from xintu.config import get_settings

        data_dir = get_settings().data_dir
    return factory(data_dir)


# -- organizing ---------------------------------------------------------------------------


def folder_name(category: str) -> str:
    """The per-category folder: its Chinese name (e.g. ``宠物萌照``)."""
    return CATEGORY_NAMES[Category(category)]


def organize(report: Report, target: Path, mode: OrganizeMode) -> list[PhotoFile]:
    """Put each classified file into ``target/<category>/``; returns the files placed.

    Nothing is ever overwritten: a clash gets `` (1)``, `` (2)``… unless the file there is
    this very content from an earlier run. ``move`` deletes a source only after its copy
    was read back and hashed equal.
    """
    placed: list[PhotoFile] = []
    claimed: set[Path] = set()
    for photo in report.files:
        outcome = report.outcomes.get(photo.image_hash)
        if outcome is None or outcome.category is None:
            continue
        if mode is OrganizeMode.link and photo.path.is_symlink():
            continue
        directory = target / folder_name(outcome.category)
        directory.mkdir(parents=True, exist_ok=True)
        destination, exists = _free_name(directory, photo, claimed)
        claimed.add(destination)
        if not exists:
            _place(photo.path, destination, photo.image_hash, mode)
        elif mode is OrganizeMode.move:
            # Identical content is already there (verified by hash): the source can go.
            photo.path.unlink()
        photo.destination = destination
        placed.append(photo)
    return placed


def _free_name(directory: Path, photo: PhotoFile, claimed: set[Path]) -> tuple[Path, bool]:
    """A name in ``directory`` for ``photo``; True when that exact content is already there."""
    stem, suffix = photo.path.stem, photo.path.suffix
    counter = 0
    while True:
        name = f"{stem}{suffix}" if counter == 0 else f"{stem} ({counter}){suffix}"
        candidate = directory / name
        if candidate in claimed:
            counter += 1
            continue
        if not candidate.exists() and not candidate.is_symlink():
            return candidate, False
        if candidate.resolve() == photo.path.resolve():
            return candidate, True
        with contextlib.suppress(OSError):
            size, existing_hash = hash_file(candidate)
            if size == photo.size and existing_hash == photo.image_hash:
                return candidate, True
        counter += 1


def _place(source: Path, destination: Path, image_hash: str, mode: OrganizeMode) -> None:
    if mode is OrganizeMode.link:
        try:
            os.link(source, destination)
        except OSError:
            # Another filesystem (or no hard links): a symbolic link to the absolute path.
            destination.symlink_to(source.resolve())
        return
    partial = destination.with_name(f".{destination.name}.xintu-partial")
    shutil.copy2(source, partial)
    _, copied_hash = hash_file(partial)
    if copied_hash != image_hash:
        partial.unlink(missing_ok=True)
        raise ClientError(f"copy of {source} does not match the original; nothing was moved")
    if destination.exists():  # appeared meanwhile: never overwrite
        partial.unlink(missing_ok=True)
        raise ClientError(f"{destination} appeared while copying; nothing was overwritten")
    os.replace(partial, destination)
    if mode is OrganizeMode.move:
        source.unlink()


# -- output -------------------------------------------------------------------------------


def write_json(report: Report, path: Path) -> None:
    body = {
        "files": report.rows(),
        "skipped": [str(skipped) for skipped in report.skipped],
        "stats": asdict(report.stats),
        "incomplete": report.incomplete,
    }
    path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))


def write_csv(report: Report, path: Path) -> None:
    rows = report.rows()
    columns = list(rows[0]) if rows else ["path", "image_hash", "category"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB"


def print_summary(report: Report, console: Console) -> None:
    """A table per category and one with what was uploaded and what was saved."""
    counts = report.category_counts()
    categories = Table(title="分类结果 by category")
    categories.add_column("category")
    categories.add_column("类别")
    categories.add_column("photos", justify="right")
    for category in Category:
        categories.add_row(category.value, CATEGORY_NAMES[category], str(counts[category.value]))
    console.print(categories)

    stats = report.stats
    totals = Table(title="本次运行 this run")
    totals.add_column("")
    totals.add_column("", justify="right")
    saved = stats.folder_bytes - stats.upload_bytes
    rows = [
        ("image files 图片", str(stats.images)),
        ("distinct images 不同图片", str(stats.distinct_images)),
        ("skipped (not images) 跳过", str(stats.non_images + stats.unreadable)),
        ("finished earlier (state) 已完成", str(stats.from_state)),
        ("cache hits 缓存命中 (no upload)", str(stats.cache_hits)),
        ("uploaded 上传", str(stats.uploaded)),
        ("classified locally 本地", str(stats.local)),
        ("failed 失败", str(stats.failed)),
        ("not yet done 未完成", str(stats.pending)),
        ("folder size 原图大小", _megabytes(stats.folder_bytes)),
        ("bytes uploaded 上传流量", _megabytes(stats.upload_bytes)),
        ("bytes not sent 节省流量", _megabytes(max(0, saved))),
        ("time 用时", f"{stats.elapsed_s:.1f} s ({stats.photos_per_s:.0f} photos/s)"),
    ]
    for label, value in rows:
        totals.add_row(label, value)
    console.print(totals)
    failures = [
        (photo, report.outcomes[photo.image_hash])
        for photo in report.files
        if photo.image_hash in report.outcomes and not report.outcomes[photo.image_hash].ok
    ]
    for photo, outcome in failures[:20]:
        console.print(f"[red]failed[/red] {photo.path}: {outcome.error_code} {outcome.error}")
    if len(failures) > 20:
        console.print(f"… and {len(failures) - 20} more failures")
    if report.incomplete:
        console.print(
            f"[yellow]{stats.pending} images are not done yet; run the same command again "
            "to continue (finished ones are not uploaded again).[/yellow]"
        )
