"""Classification: cache lookups, inference on a miss, cache writes, request logging."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from xintu.categories import category_name
from xintu.classify.cache import CacheEntry, ClassificationCache
from xintu.classify.singleflight import SingleFlight
from xintu.classify.writer import WriteBehind
from xintu.config import InferenceMode, Settings
from xintu.deps import Caller
from xintu.errors import (
    AppError,
    ImageTooLarge,
    NoClassifierAvailable,
    UnsupportedMediaType,
)
from xintu.images.validation import check_header, prepare_image, sha256_hex, sniff_format
from xintu.inference import precheck
from xintu.inference.base import Classifier, Prediction, PreparedImage
from xintu.inference.hybrid import HybridClassifier, NoClassifierAnswered
from xintu.inference.pricing import call_cost

# Hash bodies above this size in a worker thread; below, the hop costs more than the hash.
_THREAD_HASH_BYTES = 1024 * 1024


class CreditGate(Protocol):
    """Billing's say in classification (DESIGN §7); absent when billing is disabled."""

    async def may_use_remote(self, caller: Caller) -> bool: ...

    async def charge_remote(self, caller: Caller, reference: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Upload:
    data: bytes
    claimed_hash: str | None
    filename: str | None = None
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class ClassifyOutcome:
    data: dict[str, Any]
    from_cache: bool
    processing_time_ms: float


def classification_data(
    image_hash: str,
    category: str,
    confidence: float,
    description: str,
    model: str,
    inference_method: str,
) -> dict[str, Any]:
    """The classification object of DESIGN §4.1."""
    return {
        "category": category,
        "category_name": category_name(category),
        "confidence": round(confidence, 4),
        "description": description,
        "image_hash": image_hash,
        "inference_method": inference_method,
        "model": model,
    }


def _entry_data(entry: CacheEntry) -> dict[str, Any]:
    return classification_data(
        entry.image_hash,
        entry.category,
        entry.confidence,
        entry.description,
        entry.model,
        "cache",
    )


class ClassificationService:
    def __init__(
        self,
        settings: Settings,
        cache: ClassificationCache,
        classifier: HybridClassifier,
        writer: WriteBehind,
        flights: SingleFlight,
        local: Classifier | None,
        credit_gate: CreditGate | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.classifier = classifier
        self.writer = writer
        self.flights = flights
        self.local = local
        self.credit_gate = credit_gate

    # -- cache checks (no upload) -----------------------------------------------------------

    async def check_cache(
        self, image_hash: str, caller: Caller, request_id: str
    ) -> dict[str, Any] | None:
        """The cached classification the caller may see, or None. A hit is logged."""
        started = time.perf_counter()
        entry = await self.cache.get(image_hash)
        if entry is None or not entry.visible_to(caller.uploader):
            return None
        self._log_hit(entry, caller, request_id, "check-cache", started)
        return _entry_data(entry)

    async def check_cache_batch(
        self, hashes: list[str], caller: Caller, request_id: str
    ) -> list[dict[str, Any] | None]:
        started = time.perf_counter()
        entries = await self.cache.get_many(hashes)
        results: list[dict[str, Any] | None] = []
        for image_hash in hashes:
            entry = entries.get(image_hash)
            if entry is None or not entry.visible_to(caller.uploader):
                results.append(None)
                continue
            self._log_hit(entry, caller, request_id, "batch-check-cache", started)
            results.append(_entry_data(entry))
        return results

    def _log_hit(
        self, entry: CacheEntry, caller: Caller, request_id: str, endpoint: str, started: float
    ) -> None:
        self.writer.note_hit(entry.image_hash)
        self._log(
            caller,
            request_id,
            endpoint,
            started,
            image_hash=entry.image_hash,
            category=entry.category,
            confidence=entry.confidence,
            from_cache=True,
            inference_method="cache",
            model=entry.model,
            size_bytes=entry.size_bytes,
        )

    # -- uploads ---------------------------------------------------------------------------

    async def classify_upload(
        self, upload: Upload, caller: Caller, request_id: str, endpoint: str
    ) -> ClassifyOutcome:
        """Answer one uploaded image from the cache or by inference; failures are logged."""
        started = time.perf_counter()
        try:
            return await self._classify_upload(upload, caller, request_id, endpoint, started)
        except AppError as error:
            self._log(
                caller,
                request_id,
                endpoint,
                started,
                image_hash=upload.claimed_hash,
                status_code=error.status_code,
                error_code=error.code,
                size_bytes=len(upload.data) or None,
            )
            raise

    async def _classify_upload(
        self, upload: Upload, caller: Caller, request_id: str, endpoint: str, started: float
    ) -> ClassifyOutcome:
        if upload.too_large:
            raise ImageTooLarge()
        if sniff_format(upload.data) is None:
            raise UnsupportedMediaType()
        key = upload.claimed_hash or await self._sha256(upload.data)

        entry = await self.cache.get(key)
        if entry is not None and entry.visible_to(caller.uploader):
            # The answer is by hash; a header check (type, size, pixel limit) is enough.
            check_header(upload.data, self.settings.max_image_pixels)
            self._log_hit(entry, caller, request_id, endpoint, started)
            return ClassifyOutcome(_entry_data(entry), True, _elapsed_ms(started))

        image = await asyncio.to_thread(prepare_image, upload.data, self.settings.max_image_pixels)
        prediction, leader = await self.flights.run(
            image.sha256, lambda: self._infer(image, caller)
        )
        if self._cacheable(prediction):
            await self.cache.record(
                key,
                prediction,
                uploader=caller.uploader,
                server_verified=key == image.sha256,
                size_bytes=len(upload.data),
            )
        if leader:
            method = prediction.inference_method
            cost = call_cost(
                self.settings.model_prices,
                prediction.model,
                prediction.input_tokens,
                prediction.output_tokens,
            )
            if method == "remote" and self.credit_gate is not None:
                await self.credit_gate.charge_remote(caller, f"classify:{request_id}:{key}")
        else:
            # Answered by a concurrent identical upload's inference: nothing was paid for it.
            method, cost = "cache", Decimal(0)
        self._log(
            caller,
            request_id,
            endpoint,
            started,
            image_hash=key,
            category=prediction.category.value,
            confidence=prediction.confidence,
            from_cache=not leader,
            inference_method=method,
            provider=prediction.provider if leader else None,
            model=prediction.model,
            input_tokens=prediction.input_tokens if leader else 0,
            output_tokens=prediction.output_tokens if leader else 0,
            cost=cost,
            size_bytes=len(upload.data),
        )
        data = classification_data(
            key,
            prediction.category.value,
            prediction.confidence,
            prediction.description,
            prediction.model,
            method,
        )
        return ClassifyOutcome(data, not leader, _elapsed_ms(started))

    def log_rejected_upload(
        self, caller: Caller, request_id: str, endpoint: str, error: AppError
    ) -> None:
        """Log an upload refused before it could be read (too large, malformed)."""
        self._log(
            caller,
            request_id,
            endpoint,
            time.perf_counter(),
            status_code=error.status_code,
            error_code=error.code,
        )

    async def classify_batch(
        self, uploads: list[Upload | AppError], caller: Caller, request_id: str
    ) -> list[ClassifyOutcome | AppError]:
        """Each upload on its own (one bad file never fails the batch), a bounded pool at a
        time; identical images share one inference through single flight."""
        pool = asyncio.Semaphore(self.settings.batch_concurrency)

        async def one(upload: Upload | AppError) -> ClassifyOutcome | AppError:
            if isinstance(upload, AppError):
                self.log_rejected_upload(caller, request_id, "batch", upload)
                return upload
            async with pool:
                try:
                    return await self.classify_upload(upload, caller, request_id, "batch")
                except AppError as error:
                    return error

        return list(await asyncio.gather(*(one(upload) for upload in uploads)))

    async def classify_local(self, data: bytes) -> tuple[PreparedImage, Prediction]:
        """The local pipeline only, no cache (``POST /local-classify``)."""
        if self.local is None:
            raise NoClassifierAvailable("The local classifier is not installed or disabled")
        image = await asyncio.to_thread(prepare_image, data, self.settings.max_image_pixels)
        try:
            return image, await self.local.classify(image)
        except Exception as exc:
            raise NoClassifierAvailable(f"The local classifier failed: {exc}") from exc

    # -- helpers ---------------------------------------------------------------------------

    async def _infer(self, image: PreparedImage, caller: Caller) -> Prediction:
        if self.settings.screenshot_precheck:
            answer = await asyncio.to_thread(precheck.classify, image)
            if answer is not None:
                return answer
        allow_remote = True
        if self.credit_gate is not None:
            allow_remote = await self.credit_gate.may_use_remote(caller)
        try:
            return await self.classifier.classify(image, allow_remote=allow_remote)
        except NoClassifierAnswered as exc:
            raise NoClassifierAvailable(f"No classifier could answer: {exc}") from exc

    def _cacheable(self, prediction: Prediction) -> bool:
        """DESIGN §6: remote answers always; local answers only in ``local_only`` mode, so
        that after a fallback the next upload gets the LLM. Pre-check answers are cached:
        the LLM would not do better on them, and a hit spares the client the upload."""
        if prediction.inference_method == "remote" or prediction.model == precheck.MODEL_NAME:
            return True
        return self.settings.inference_mode is InferenceMode.local_only

    @staticmethod
    async def _sha256(data: bytes) -> str:
        if len(data) > _THREAD_HASH_BYTES:
            return await asyncio.to_thread(sha256_hex, data)
        return sha256_hex(data)

    def _log(
        self,
        caller: Caller,
        request_id: str,
        endpoint: str,
        started: float,
        **fields: Any,
    ) -> None:
        self.writer.log(
            {
                "request_id": request_id,
                "user_id": caller.log_user_id,
                "ip_address": caller.ip,
                "endpoint": endpoint,
                "processing_time_ms": _elapsed_ms(started),
                "image_hash": None,
                "category": None,
                "confidence": None,
                "from_cache": False,
                "inference_method": None,
                "provider": None,
                "model": None,
                "status_code": 200,
                "error_code": None,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost": Decimal(0),
                "size_bytes": None,
            }
            | fields
        )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
