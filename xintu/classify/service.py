"""Classification: cache lookups, inference on a miss, cache writes, request logging."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

from xintu.billing.gate import Reservation
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
from xintu.images.budget import decode_budget, decoded
from xintu.images.fingerprint import Fingerprint
from xintu.images.fingerprint import fingerprint as fingerprint_of
from xintu.images.validation import check_header, sha256_hex, sniff_format
from xintu.inference import precheck
from xintu.inference.base import Classifier, Prediction, PreparedImage
from xintu.inference.hybrid import HybridClassifier, NoClassifierAnswered
from xintu.inference.pricing import call_cost

# Hash bodies above this size in a worker thread; below, the hop costs more than the hash.
_THREAD_HASH_BYTES = 1024 * 1024


class CreditGate(Protocol):
    """Billing's say in classification (DESIGN §7); absent when billing is disabled. A
    credit is reserved before a remote call and released when no paid answer came of it."""

    async def reserve_remote(self, caller: Caller, note: str) -> Reservation | None: ...

    async def release(self, reservation: Reservation, why: str) -> None: ...


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
    data = classification_data(
        entry.image_hash,
        entry.category,
        entry.confidence,
        entry.description,
        entry.model,
        "cache",
    )
    if entry.video is not None:
        # A video's hash: its duration and per-frame results too (DESIGN §4.9).
        data |= entry.video
    return data


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
        self._budget = decode_budget(settings.decode_budget_pixels)

    # -- cache checks (no upload) -----------------------------------------------------------

    async def check_cache(
        self, image_hash: str, caller: Caller, request_id: str
    ) -> dict[str, Any] | None:
        """The cached classification the caller may see, or None. A hit is logged."""
        started = time.perf_counter()
        await self.writer.reserve(1)
        entry = await self.cache.get(image_hash)
        if entry is None or not entry.visible_to(caller.key):
            return None
        self._log_hit(entry, caller, request_id, "check-cache", started)
        return _entry_data(entry)

    async def check_cache_batch(
        self, hashes: list[str], caller: Caller, request_id: str
    ) -> list[dict[str, Any] | None]:
        """Answers in request order; a hash repeated in one request is served (logged,
        counted as a hit) once."""
        started = time.perf_counter()
        await self.writer.reserve(len(hashes))
        entries = await self.cache.get_many(hashes)
        served: dict[str, dict[str, Any] | None] = {}
        for image_hash in dict.fromkeys(hashes):
            entry = entries.get(image_hash)
            if entry is None or not entry.visible_to(caller.key):
                served[image_hash] = None
                continue
            self._log_hit(entry, caller, request_id, "batch-check-cache", started)
            served[image_hash] = _entry_data(entry)
        return [served[image_hash] for image_hash in hashes]

    def serve_entry(
        self, entry: CacheEntry, caller: Caller, request_id: str, endpoint: str, started: float
    ) -> dict[str, Any]:
        """Answer from an entry the caller may see: a logged cache hit."""
        self._log_hit(entry, caller, request_id, endpoint, started)
        return _entry_data(entry)

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
        await self.writer.reserve(1)
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

        claimed = upload.claimed_hash is not None
        entry = await self.cache.get(key)
        visible = entry is not None and entry.visible_to(caller.key)
        # A verified entry, or a claim with no fingerprint to compare, answers by hash:
        # a header check (type, size, pixel limit) is enough. Otherwise the upload is
        # decoded and compared with the picture the entry was decided on.
        if (
            entry is not None
            and visible
            and (entry.verified or (claimed and entry.fingerprint is None))
        ):
            check_header(upload.data, self.settings.max_image_pixels)
            self._log_hit(entry, caller, request_id, endpoint, started)
            return ClassifyOutcome(_entry_data(entry), True, _elapsed_ms(started))

        async with decoded(upload.data, self.settings.max_image_pixels, self._budget) as image:
            return await self._answer_decoded(
                upload, image, key, entry, caller, request_id, endpoint, started
            )

    async def _answer_decoded(
        self,
        upload: Upload,
        image: PreparedImage,
        key: str,
        entry: CacheEntry | None,
        caller: Caller,
        request_id: str,
        endpoint: str,
        started: float,
    ) -> ClassifyOutcome:
        """A cache miss, or an entry to compare with: the decoded upload (within the decode
        budget) confirms the entry, matches a near-duplicate, or is inferred."""
        claimed = upload.claimed_hash is not None
        visible = entry is not None and entry.visible_to(caller.key)
        fingerprint = await asyncio.to_thread(fingerprint_of, image.image)
        server_verified = key == image.sha256
        if entry is not None and _same_picture(entry, fingerprint):
            # The picture the entry was decided on: a confirming vote (a claim) or, for
            # bytes the server hashed itself, proof (DESIGN §4.1); no inference either way.
            if not entry.verified and (not visible or server_verified):
                entry = (
                    await self.cache.record(
                        key,
                        entry,
                        uploader=caller.key,
                        server_verified=server_verified,
                        size_bytes=len(upload.data),
                    )
                    or entry
                )  # queued when the database is away: the answer stands
            self._log_hit(entry, caller, request_id, endpoint, started)
            return ClassifyOutcome(_entry_data(entry), True, _elapsed_ms(started))
        if entry is not None and visible and claimed and fingerprint is None:
            # Nothing to compare: the claim is taken, as before fingerprints.
            self._log_hit(entry, caller, request_id, endpoint, started)
            return ClassifyOutcome(_entry_data(entry), True, _elapsed_ms(started))
        if entry is None and fingerprint is not None:
            near = await self.cache.find_near_duplicate(fingerprint)
            if near is not None:
                return await self._near_duplicate_hit(
                    key, near, upload, fingerprint, caller, request_id, endpoint, started
                )

        # Never pay a provider for an answer that could not be stored: with the database
        # down a moment ago, refuse now (the lookup above already failed if it is down now).
        self.cache.database_state.require()
        prediction, leader = await self.flights.run(
            image.sha256, lambda: self._infer(image, caller, request_id)
        )
        if self._cacheable(prediction):
            await self.cache.record(
                key,
                prediction,
                uploader=caller.key,
                server_verified=server_verified,
                size_bytes=len(upload.data),
                fingerprint=fingerprint,
            )
        if leader:
            method = prediction.inference_method
            cost = call_cost(
                self.settings.model_prices,
                prediction.model,
                prediction.input_tokens,
                prediction.output_tokens,
            )
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

    async def _near_duplicate_hit(
        self,
        key: str,
        near: CacheEntry,
        upload: Upload,
        fingerprint: Fingerprint,
        caller: Caller,
        request_id: str,
        endpoint: str,
        started: float,
    ) -> ClassifyOutcome:
        """Answer from a shared entry of the same picture under another hash (recompressed,
        resized, re-encoded). The answer is recorded under this upload's own hash as this
        caller's vote, never shared on the strength of a fingerprint alone: the caller's
        next check-cache is an exact hit, and other callers confirm it by upload."""
        entry = await self.cache.record(
            key,
            replace(near, fingerprint=fingerprint),
            uploader=caller.key,
            server_verified=False,
            size_bytes=len(upload.data),
        )
        self.writer.note_hit(near.image_hash)
        self._log(
            caller,
            request_id,
            endpoint,
            started,
            image_hash=key,
            category=near.category,
            confidence=near.confidence,
            from_cache=True,
            inference_method="cache",
            model=near.model,
            size_bytes=len(upload.data),
        )
        data = _entry_data(entry or near) | {"near_duplicate": True}
        return ClassifyOutcome(data, True, _elapsed_ms(started))

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

    async def classify_local(self, data: bytes) -> tuple[str, Prediction]:
        """The local pipeline only, no cache (``POST /local-classify``): the received bytes'
        hash and the prediction."""
        if self.local is None:
            raise NoClassifierAvailable("The local classifier is not installed or disabled")
        async with decoded(data, self.settings.max_image_pixels, self._budget) as image:
            try:
                return image.sha256, await self.local.classify(image)
            except Exception as exc:
                raise NoClassifierAvailable(f"The local classifier failed: {exc}") from exc

    # -- helpers ---------------------------------------------------------------------------

    async def _infer(self, image: PreparedImage, caller: Caller, request_id: str) -> Prediction:
        """Inference for a cache miss. With billing, a remote call needs a credit reserved
        first; the credit goes back unless a remote provider gave the answer."""
        if self.settings.screenshot_precheck:
            answer = await asyncio.to_thread(precheck.classify, image)
            if answer is not None:
                return answer
        gate = self.credit_gate
        reservation = None
        if gate is not None and self.classifier.offers_remote:
            reservation = await gate.reserve_remote(caller, f"request {request_id}")
        allow_remote = gate is None or reservation is not None
        try:
            prediction = await self.classifier.classify(image, allow_remote=allow_remote)
        except BaseException as exc:
            if reservation is not None and gate is not None:
                await gate.release(reservation, "no classifier answered")
            if isinstance(exc, NoClassifierAnswered):
                raise NoClassifierAvailable(f"No classifier could answer: {exc}") from exc
            raise
        if reservation is not None and gate is not None and prediction.inference_method != "remote":
            await gate.release(reservation, f"answered by {prediction.inference_method}")
        return prediction

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
                "client_label": caller.label,
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


def _same_picture(entry: CacheEntry, fingerprint: Fingerprint | None) -> bool:
    return (
        fingerprint is not None
        and entry.fingerprint is not None
        and fingerprint.matches(entry.fingerprint)
    )


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
