"""Application errors and the one handler that renders them as ``{"success", "code", "detail"}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from xintu.responses import FastJSONResponse


class AppError(Exception):
    status_code: int = 400
    code: str = "bad_request"
    detail: str = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.detail
        self.headers = headers
        super().__init__(self.detail)


class InvalidHash(AppError):
    status_code = 422
    code = "invalid_hash"
    detail = "image_hash must be 64 hexadecimal characters (SHA-256)"


class ImageTooLarge(AppError):
    status_code = 413
    code = "image_too_large"
    detail = "The image is larger than the upload limit"


class BatchTooLarge(AppError):
    status_code = 413
    code = "batch_too_large"
    detail = "Too many files in one batch"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    detail = "Not a supported image type (JPEG, PNG, WebP, GIF, BMP, HEIC/HEIF, MPO)"


class InvalidImage(AppError):
    status_code = 400
    code = "invalid_image"
    detail = "The image cannot be decoded"


class MissingImage(AppError):
    status_code = 422
    code = "missing_image"
    detail = "No image in the request: send multipart field 'image' (or 'file')"


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"
    detail = "Too many requests; retry later"


class NoClassifierAvailable(AppError):
    status_code = 503
    code = "no_classifier_available"
    detail = "No classifier could answer: remote providers failed and no local model is available"


class DatabaseUnavailable(AppError):
    status_code = 503
    code = "database_unavailable"
    detail = "The database is unreachable; retry shortly"


class NotAuthenticated(AppError):
    status_code = 401
    code = "not_authenticated"
    detail = "A valid bearer token is required"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    detail = "Not allowed"


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    detail = "Not found"


def error_body(code: str, detail: Any) -> dict[str, Any]:
    return {"success": False, "code": code, "detail": detail}


def responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the errors a route can raise."""
    documented: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = documented.setdefault(error.status_code, {"description": ""})
        entry["description"] = " | ".join(
            part for part in (entry["description"], f"`{error.code}`: {error.detail}") if part
        )
    return documented


_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> FastJSONResponse:
        return FastJSONResponse(
            error_body(exc.code, exc.detail), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> FastJSONResponse:
        problems = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()
        ]
        return FastJSONResponse(
            {**error_body("validation_error", "The request is not valid"), "errors": problems},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> FastJSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return FastJSONResponse(
            error_body(code, exc.detail), status_code=exc.status_code, headers=exc.headers
        )
