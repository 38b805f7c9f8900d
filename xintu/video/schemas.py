"""Response shape of ``POST /classify/video`` (DESIGN §4.9)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from xintu.classify.schemas import Classification


class VideoFrame(BaseModel):
    t: float = Field(description="seconds from the start of the video")
    category: str
    confidence: float
    image_hash: str = Field(description="SHA-256 of the frame as classified (a JPEG)")


class VideoClassification(Classification):
    duration_s: float
    frames: list[VideoFrame]


class VideoClassifyResponse(BaseModel):
    success: bool
    data: VideoClassification
    from_cache: bool
    processing_time_ms: float
    request_id: str
    timestamp: str
