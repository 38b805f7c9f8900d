"""Video classification: whole-video cache, keyframes through the image path, one vote."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from xintu.categories import Category
from xintu.classify.service import (
    ClassificationService,
    ClassifyOutcome,
    Upload,
    classification_data,
)
from xintu.config import Settings
from xintu.deps import Caller
from xintu.errors import AppError
from xintu.inference.base import Prediction
from xintu.video.frames import Keyframe, Keyframes, extract_keyframes
from xintu.video.upload import ReceivedVideo

ENDPOINT = "video"
# Which method names a video's answer: any remote frame makes it remote, else any local.
_METHOD_RANK = {"cache": 0, "local": 1, "remote": 2}


@dataclass(frozen=True, slots=True)
class VideoOutcome:
    data: dict[str, Any]
    from_cache: bool
    processing_time_ms: float


@dataclass(frozen=True, slots=True)
class _FrameResult:
    t: float
    data: dict[str, Any]


class VideoService:
    def __init__(self, settings: Settings, classification: ClassificationService) -> None:
        self.settings = settings
        self.classification = classification

    async def classify(self, video: ReceivedVideo, caller: Caller, request_id: str) -> VideoOutcome:
        """Answer a received video from the cache, or classify its keyframes (the video
        file is deleted as soon as they are decoded) and cache the whole-video answer."""
        started = time.perf_counter()
        key = video.claimed_hash or video.sha256
        entry = await self.classification.cache.get(key)
        if entry is not None and entry.video is not None and entry.visible_to(caller.key):
            video.discard()
            data = self.classification.serve_entry(entry, caller, request_id, ENDPOINT, started)
            return VideoOutcome(data, True, _elapsed_ms(started))

        try:
            keyframes = await asyncio.to_thread(
                extract_keyframes,
                video.path,
                max_seconds=self.settings.max_video_seconds,
                max_frames=self.settings.video_max_frames,
                max_pixels=self.settings.max_image_pixels,
            )
        except AppError as error:
            self.log_rejected(caller, request_id, error)
            raise
        finally:
            video.discard()
        # Frames that fail are logged by the image path, one row each.
        results = await self._classify_frames(keyframes.frames, caller, request_id)
        data, prediction = aggregate(key, keyframes, results)
        if await self._cacheable(results):
            await self.classification.cache.record(
                key,
                prediction,
                uploader=caller.key,
                server_verified=key == video.sha256,
                size_bytes=video.size,
                video={"duration_s": data["duration_s"], "frames": data["frames"]},
            )
        return VideoOutcome(data, False, _elapsed_ms(started))

    def log_rejected(self, caller: Caller, request_id: str, error: AppError) -> None:
        self.classification.log_rejected_upload(caller, request_id, ENDPOINT, error)

    async def _classify_frames(
        self, frames: list[Keyframe], caller: Caller, request_id: str
    ) -> list[_FrameResult]:
        """Each frame as an upload of its JPEG through the normal image path (cache, single
        flight, providers, local fallback, request log), a bounded pool at a time."""
        pool = asyncio.Semaphore(self.settings.batch_concurrency)

        async def one(frame: Keyframe) -> ClassifyOutcome | AppError:
            async with pool:
                try:
                    return await self.classification.classify_upload(
                        Upload(data=frame.jpeg, claimed_hash=None, filename=f"t={frame.t}"),
                        caller,
                        request_id,
                        ENDPOINT,
                    )
                except AppError as error:
                    return error

        outcomes = await asyncio.gather(*(one(frame) for frame in frames))
        results = [
            _FrameResult(frame.t, outcome.data)
            for frame, outcome in zip(frames, outcomes, strict=True)
            if not isinstance(outcome, AppError)
        ]
        if not results:
            # No frame got an answer: the first frame's error says why (e.g. 503).
            error = outcomes[0]
            assert isinstance(error, AppError)
            raise error
        return results

    async def _cacheable(self, results: list[_FrameResult]) -> bool:
        """When every frame's answer went into the cache (DESIGN §6, decided by the image
        path): not after a fallback to the local pipeline outside ``local_only``, so that
        the next upload gets the LLM."""
        hashes = [result.data["image_hash"] for result in results]
        return len(await self.classification.cache.get_many(hashes)) == len(set(hashes))


def aggregate(
    video_hash: str, keyframes: Keyframes, results: list[_FrameResult]
) -> tuple[dict[str, Any], Prediction]:
    """One category by a confidence-weighted vote of the frames.

    The winner has the largest sum of confidences (ties: the earlier category of DESIGN §1);
    its confidence is that sum over the number of frames, so it is high only when most
    frames agree and are sure. Description and model are those of the winner's surest frame.
    """
    weights: dict[str, float] = defaultdict(float)
    for result in results:
        weights[result.data["category"]] += result.data["confidence"]
    order = [category.value for category in Category]
    winner = max(weights, key=lambda category: (weights[category], -order.index(category)))
    best = max(
        (result for result in results if result.data["category"] == winner),
        key=lambda result: result.data["confidence"],
    )
    confidence = min(1.0, weights[winner] / len(results))
    method = max(
        (result.data["inference_method"] for result in results), key=lambda m: _METHOD_RANK[m]
    )
    frames = [
        {
            "t": result.t,
            "category": result.data["category"],
            "confidence": result.data["confidence"],
            "image_hash": result.data["image_hash"],
        }
        for result in results
    ]
    prediction = Prediction(
        category=Category(winner),
        confidence=confidence,
        description=best.data["description"],
        model=best.data["model"],
        # A cached video answer comes from frames that were remote (or local in local_only).
        inference_method="local" if method == "local" else "remote",
        provider="video",
    )
    data = classification_data(
        video_hash, winner, confidence, best.data["description"], best.data["model"], method
    ) | {"duration_s": keyframes.duration_s, "frames": frames}
    return data, prediction


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
