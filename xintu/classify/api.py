"""Classification routes (DESIGN §4.1): parse, call the service, shape the answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request

from xintu.categories import CATEGORY_DESCRIPTIONS, CATEGORY_NAMES, Category
from xintu.classify import schemas
from xintu.classify.service import ClassificationService, Upload, classification_data
from xintu.classify.writer import Overloaded
from xintu.config import Settings
from xintu.deps import Caller, caller_of, client_label
from xintu.errors import (
    AppError,
    BatchTooLarge,
    ImageTooLarge,
    InvalidHash,
    InvalidImage,
    MissingImage,
    NoClassifierAvailable,
    RateLimited,
    UnsupportedMediaType,
    responses,
)
from xintu.images.validation import normalize_hash
from xintu.ratelimit import RateLimiter
from xintu.responses import FastJSONResponse
from xintu.uploads import read_multipart, read_raw_body

router = APIRouter(tags=["classification"])

_UPLOAD_ERRORS = (
    ImageTooLarge,
    UnsupportedMediaType,
    InvalidImage,
    InvalidHash,
    MissingImage,
    RateLimited,
    NoClassifierAvailable,
    Overloaded,
)
_SINGLE_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "file": {"type": "string", "format": "binary"},
                        "image_hash": {"type": "string", "description": "SHA-256 of the original"},
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_BATCH_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "images": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                        },
                        "image_hashes": {"type": "string", "description": "JSON list by index"},
                    },
                }
            }
        },
    }
}


@dataclass(frozen=True, slots=True)
class ClassifyContext:
    """Everything a classification route needs, resolved as one dependency (each
    dependency FastAPI solves costs a few percent of a cache hit)."""

    caller: Caller
    service: ClassificationService
    limiter: RateLimiter
    settings: Settings
    request_id: str


async def get_context(request: Request) -> ClassifyContext:
    state = request.app.state
    return ClassifyContext(
        caller=caller_of(request),
        service=state.classification,
        limiter=state.rate_limiter,
        settings=state.settings,
        request_id=request.state.request_id,
    )


ContextDep = Annotated[ClassifyContext, Depends(get_context)]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _labelled(caller: Caller, body_user_id: str | None) -> Caller:
    """Check-cache bodies may carry the client's label instead of the X-User-ID header."""
    label = client_label(body_user_id)
    if caller.label is not None or label is None:
        return caller
    return Caller(ip=caller.ip, token=caller.token, label=label)


@router.get("/categories", response_model=schemas.CategoriesResponse)
async def list_categories() -> dict[str, Any]:
    """The eight categories with their Chinese names."""
    return {
        "success": True,
        "categories": [
            {
                "category": category.value,
                "category_name": CATEGORY_NAMES[category],
                "description": CATEGORY_DESCRIPTIONS[category],
            }
            for category in Category
        ],
    }


@router.post(
    "/classify/check-cache",
    response_model=schemas.CheckCacheResponse,
    responses=responses(InvalidHash, RateLimited, Overloaded),
)
async def check_cache(
    body: schemas.CheckCacheRequest,
    context: ContextDep,
) -> FastJSONResponse:
    """Look up the classification of an original by its SHA-256, without uploading it."""
    await context.limiter.hit("check", context.caller.key)
    image_hash = normalize_hash(body.image_hash)
    request_id = context.request_id
    data = await context.service.check_cache(
        image_hash, _labelled(context.caller, body.user_id), request_id
    )
    cached = data is not None
    return FastJSONResponse(
        {
            "success": True,
            "cached": cached,
            "from_cache": cached,
            "data": data,
            "request_id": request_id,
            "timestamp": _now(),
        }
    )


@router.post(
    "/classify/batch-check-cache",
    response_model=schemas.BatchCheckCacheResponse,
    responses=responses(InvalidHash, RateLimited, Overloaded),
)
async def batch_check_cache(
    body: schemas.BatchCheckCacheRequest,
    context: ContextDep,
) -> FastJSONResponse:
    """Look up to 1,000 hashes at once; items come back in request order."""
    hashes = []
    for position, value in enumerate(body.image_hashes):
        try:
            hashes.append(normalize_hash(value))
        except InvalidHash as exc:
            raise InvalidHash(f"image_hashes[{position}] is not a SHA-256 hex digest") from exc
    # Each distinct hash is one lookup against the check limit (a repeat costs nothing
    # and is answered, logged and counted once).
    await context.limiter.hit("check", context.caller.key, cost=len(set(hashes)))
    request_id = context.request_id
    results = await context.service.check_cache_batch(
        hashes, _labelled(context.caller, body.user_id), request_id
    )
    items = [
        {"image_hash": image_hash, "cached": data is not None, "data": data}
        for image_hash, data in zip(hashes, results, strict=True)
    ]
    return FastJSONResponse(
        {
            "success": True,
            "total": len(items),
            "cached_count": sum(1 for item in items if item["cached"]),
            "items": items,
            "request_id": request_id,
            "timestamp": _now(),
        }
    )


async def _read_single_upload(request: Request, max_bytes: int) -> Upload:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await read_multipart(request, max_file_bytes=max_bytes, max_files=1, fail_fast=True)
        files = form.files_named("image", "file")
        if not files:
            raise MissingImage()
        claimed = form.first_field("image_hash")
        return Upload(
            data=files[0].data,
            claimed_hash=normalize_hash(claimed) if claimed else None,
            filename=files[0].filename,
        )
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        claimed = request.headers.get("x-image-hash")
        # Check the hash before reading a body that might be large.
        claimed_hash = normalize_hash(claimed) if claimed else None
        data = await read_raw_body(request, max_bytes)
        if not data:
            raise MissingImage("The request body is empty")
        return Upload(data=data, claimed_hash=claimed_hash)
    raise UnsupportedMediaType(
        "Send multipart/form-data with field 'image', or the image as the body "
        "with Content-Type image/*"
    )


@router.post(
    "/classify",
    response_model=schemas.ClassifyResponse,
    responses=responses(*_UPLOAD_ERRORS),
    openapi_extra=_SINGLE_UPLOAD_BODY,
)
async def classify(
    request: Request,
    context: ContextDep,
) -> FastJSONResponse:
    """Classify one image (multipart ``image``/``file`` or a raw image body)."""
    await context.limiter.hit("classify", context.caller.key)
    request_id = context.request_id
    try:
        upload = await _read_single_upload(request, context.settings.max_upload_bytes)
    except AppError as error:
        context.service.log_rejected_upload(context.caller, request_id, "classify", error)
        raise
    outcome = await context.service.classify_upload(upload, context.caller, request_id, "classify")
    return FastJSONResponse(
        {
            "success": True,
            "data": outcome.data,
            "from_cache": outcome.from_cache,
            "processing_time_ms": outcome.processing_time_ms,
            "request_id": request_id,
            "timestamp": _now(),
        }
    )


def _claimed_hashes(raw: str | None, count: int) -> list[str | None]:
    """``image_hashes``: a JSON list aligned with the files; empty entries mean none."""
    if raw is None or not raw.strip():
        return [None] * count
    try:
        values = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidHash("image_hashes must be a JSON list of SHA-256 hex strings") from exc
    if not isinstance(values, list) or len(values) > count:
        raise InvalidHash("image_hashes must be a JSON list no longer than the list of images")
    padded: list[str | None] = [value if value else None for value in values]
    return padded + [None] * (count - len(padded))


@router.post(
    "/classify/batch",
    response_model=schemas.BatchClassifyResponse,
    responses=responses(BatchTooLarge, InvalidHash, MissingImage, RateLimited, Overloaded),
    openapi_extra=_BATCH_UPLOAD_BODY,
)
async def classify_batch(
    request: Request,
    context: ContextDep,
) -> FastJSONResponse:
    """Classify up to ``XINTU_BATCH_MAX`` images; one bad file never fails the batch."""
    started = time.perf_counter()
    # A batch counts one per file; the first is counted before the body is read, so that a
    # limited caller's body costs nothing to refuse.
    await context.limiter.hit("classify", context.caller.key)
    form = await read_multipart(
        request,
        max_file_bytes=context.settings.max_upload_bytes,
        max_files=context.settings.batch_max,
        fail_fast=False,
    )
    files = form.files_named("images", "images[]", "image", "file")
    if not files:
        raise MissingImage("No images in the request: send repeated multipart field 'images'")
    if len(files) > 1:  # one was counted before the body was read
        await context.limiter.hit("classify", context.caller.key, cost=len(files) - 1)
    claimed = _claimed_hashes(form.first_field("image_hashes"), len(files))

    uploads: list[Upload | AppError] = []
    for upload_file, claimed_hash in zip(files, claimed, strict=True):
        try:
            uploads.append(
                Upload(
                    data=upload_file.data,
                    claimed_hash=normalize_hash(claimed_hash) if claimed_hash else None,
                    filename=upload_file.filename,
                    too_large=upload_file.too_large,
                )
            )
        except AppError as error:
            uploads.append(error)
    request_id = context.request_id
    outcomes = await context.service.classify_batch(uploads, context.caller, request_id)

    items: list[dict[str, Any]] = []
    for index, (upload_file, outcome) in enumerate(zip(files, outcomes, strict=True)):
        if isinstance(outcome, AppError):
            items.append(
                {
                    "index": index,
                    "filename": upload_file.filename,
                    "success": False,
                    "data": None,
                    "error": outcome.detail,
                    "error_code": outcome.code,
                    "from_cache": False,
                    "processing_time_ms": 0.0,
                }
            )
        else:
            items.append(
                {
                    "index": index,
                    "filename": upload_file.filename,
                    "success": True,
                    "data": outcome.data,
                    "error": None,
                    "error_code": None,
                    "from_cache": outcome.from_cache,
                    "processing_time_ms": outcome.processing_time_ms,
                }
            )
    success_count = sum(1 for item in items if item["success"])
    return FastJSONResponse(
        {
            "success": True,
            "total": len(items),
            "success_count": success_count,
            "fail_count": len(items) - success_count,
            "items": items,
            "request_id": request_id,
            "total_processing_time_ms": round((time.perf_counter() - started) * 1000, 2),
            "timestamp": _now(),
        }
    )


@router.post(
    "/local-classify",
    response_model=schemas.LocalClassifyResponse,
    responses=responses(*_UPLOAD_ERRORS),
    openapi_extra=_SINGLE_UPLOAD_BODY,
)
async def local_classify(
    request: Request,
    context: ContextDep,
) -> FastJSONResponse:
    """Classify with the offline pipeline only; never reads or writes the cache."""
    started = time.perf_counter()
    await context.limiter.hit("classify", context.caller.key)
    upload = await _read_single_upload(request, context.settings.max_upload_bytes)
    received_hash, prediction = await context.service.classify_local(upload.data)
    data: dict[str, Any] = classification_data(
        upload.claimed_hash or received_hash,
        prediction.category.value,
        prediction.confidence,
        prediction.description,
        prediction.model,
        "local",
    ) | {"details": prediction.details}
    return FastJSONResponse(
        {
            "success": True,
            "data": data,
            "from_cache": False,
            "processing_time_ms": round((time.perf_counter() - started) * 1000, 2),
            "request_id": context.request_id,
            "timestamp": _now(),
        }
    )
