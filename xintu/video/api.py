"""``POST /classify/video`` (DESIGN §4.9): receive into a private temp file, then classify."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from xintu.classify.api import ContextDep
from xintu.errors import (
    AppError,
    InvalidHash,
    NoClassifierAvailable,
    RateLimited,
    responses,
)
from xintu.responses import FastJSONResponse
from xintu.uploads import InvalidMultipart
from xintu.video import schemas
from xintu.video.errors import (
    InvalidVideo,
    MissingVideo,
    UnsupportedVideo,
    UploadIncomplete,
    VideoTooLarge,
    VideoTooLong,
)
from xintu.video.service import VideoService
from xintu.video.upload import receive_video

router = APIRouter(tags=["classification"])

_VIDEO_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["video"],
                    "properties": {
                        "video": {"type": "string", "format": "binary"},
                        "video_hash": {"type": "string", "description": "SHA-256 of the original"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/classify/video",
    response_model=schemas.VideoClassifyResponse,
    responses=responses(
        VideoTooLarge,
        UnsupportedVideo,
        InvalidVideo,
        InvalidMultipart,
        UploadIncomplete,
        VideoTooLong,
        InvalidHash,
        MissingVideo,
        RateLimited,
        NoClassifierAvailable,
    ),
    openapi_extra=_VIDEO_BODY,
)
async def classify_video(request: Request, context: ContextDep) -> FastJSONResponse:
    """Classify a video (MP4, MOV, WebM, 3GP) by its keyframes; cached by ``video_hash``."""
    await context.limiter.hit("classify", context.caller.key)
    service: VideoService = request.app.state.video
    settings = context.settings
    received = False
    try:
        async with receive_video(
            request, settings.max_video_bytes, settings.video_tmp_dir
        ) as video:
            received = True
            outcome = await service.classify(video, context.caller, context.request_id)
    except AppError as error:
        if not received:
            # Refused while reading; the service logs what happens after.
            service.log_rejected(context.caller, context.request_id, error)
        raise
    return FastJSONResponse(
        {
            "success": True,
            "data": outcome.data,
            "from_cache": outcome.from_cache,
            "processing_time_ms": outcome.processing_time_ms,
            "request_id": context.request_id,
            "timestamp": datetime.now(UTC).isoformat(),
        }
    )
