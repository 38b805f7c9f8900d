"""Places: GPS positions to place names in Simplified Chinese (DESIGN §4.6)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from xintu.deps import SettingsDep
from xintu.errors import ImageTooLarge, MissingImage, UnsupportedMediaType, responses
from xintu.geo import service
from xintu.geo.schemas import BatchIn, BatchOut, LocateOut, PointIn
from xintu.geo.service import InvalidGps, NoGps
from xintu.images.budget import decode_budget
from xintu.images.exif import read_exif
from xintu.images.validation import header_pixels, sniff_format
from xintu.responses import FastJSONResponse
from xintu.uploads import InvalidMultipart, read_multipart

router = APIRouter(prefix="/geo", tags=["geo"])


@router.post(
    "/locate",
    response_model=LocateOut,
    responses=responses(
        NoGps, InvalidGps, ImageTooLarge, UnsupportedMediaType, MissingImage, InvalidMultipart
    ),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": PointIn.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            }
        }
    },
)
async def locate(request: Request, settings: SettingsDep) -> FastJSONResponse:
    """Place of a photo (multipart `file`, read from its EXIF GPS) or of a JSON point."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        form = await read_multipart(
            request, max_file_bytes=settings.max_upload_bytes, max_files=1, fail_fast=True
        )
        uploads = form.files_named("file", "image")
        if not uploads or not uploads[0].data:
            raise MissingImage("No image in the request: send multipart field 'file'")
        data = uploads[0].data
        if sniff_format(data) is None:
            raise UnsupportedMediaType()
        # Reading a PNG's EXIF may decode its pixels.
        async with decode_budget(settings.decode_budget_pixels).reserve(header_pixels(data)):
            exif = await run_in_threadpool(read_exif, data, max_pixels=settings.max_image_pixels)
        if exif.gps_error is not None:
            raise InvalidGps(exif.gps_error)
        if exif.latitude is None or exif.longitude is None:
            raise NoGps()
        place = await run_in_threadpool(service.locate, exif.latitude, exif.longitude)
        body = {"success": True, **place.as_dict(), "source": "exif"}
        body["captured_at"] = exif.captured_at.isoformat() if exif.captured_at else None
        return FastJSONResponse(body)
    point = _parse_point(await request.body())
    place = await run_in_threadpool(service.locate, point.latitude, point.longitude, point.datum)
    return FastJSONResponse({"success": True, **place.as_dict(), "source": "input"})


@router.post("/locate/batch", response_model=BatchOut, responses=responses(InvalidGps))
async def locate_batch(body: BatchIn) -> FastJSONResponse:
    """Places of up to 1000 points, in order; an invalid point gets `error`, not a failure."""
    pairs = [(point.latitude, point.longitude) for point in body.points]
    datums = {point.datum for point in body.points}
    if len(datums) == 1:
        results = await run_in_threadpool(service.locate_batch, pairs, datums.pop())
    else:
        results = await run_in_threadpool(_mixed_datums, body)
    items: list[dict[str, Any]] = []
    for (latitude, longitude), result in zip(pairs, results, strict=True):
        if isinstance(result, InvalidGps):
            items.append(_invalid_item(latitude, longitude, result))
        else:
            items.append({**result.as_dict(), "source": "input", "error": None})
    return FastJSONResponse({"success": True, "items": items})


def _mixed_datums(body: BatchIn) -> list[service.Place | InvalidGps]:
    results: list[service.Place | InvalidGps] = []
    for point in body.points:
        results.extend(service.locate_batch([(point.latitude, point.longitude)], point.datum))
    return results


def _invalid_item(latitude: float, longitude: float, error: InvalidGps) -> dict[str, Any]:
    return {
        # NaN and infinity are not JSON: echo them as null.
        "latitude": latitude if _finite(latitude) else None,
        "longitude": longitude if _finite(longitude) else None,
        "country": None,
        "country_code": None,
        "province": None,
        "city": None,
        "district": None,
        "display_name": None,
        "source": "input",
        "error": error.code,
        "detail": error.detail,
    }


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


def _parse_point(raw: bytes) -> PointIn:
    """The JSON body as a point; malformed JSON or fields are 422 ``validation_error``."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": f"Invalid JSON: {exc}", "type": "json_invalid"}]
        ) from exc
    try:
        return PointIn.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from exc
