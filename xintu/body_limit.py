"""Request-body limits per route class, enforced while the body is read.

A body whose ``Content-Length`` is over its route's limit is refused before a byte of it is
read; a body without one (chunked) is counted as it arrives and refused as soon as it
passes the limit, whatever the route was doing with it. Upload routes keep their own,
tighter checks and codes (``image_too_large``, ``batch_too_large``); this is the limit every
route has, including ones added later (they get the JSON limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xintu.config import Settings
from xintu.errors import AppError, BatchTooLarge, ImageTooLarge, error_body
from xintu.responses import FastJSONResponse
from xintu.video.errors import VideoTooLarge

# Multipart form fields beside the files (hashes, operation, params).
MULTIPART_FIELD_BYTES = 1024 * 1024
# WeChat Pay's callbacks are a few KiB.
PAYMENT_CALLBACK_BYTES = 64 * 1024


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    detail = "The request body is larger than this endpoint accepts"


@dataclass(frozen=True, slots=True)
class BodyLimit:
    max_bytes: int
    # The 413 answer; the route's own error, so a client sees one code per route.
    refuse: Callable[[], Response]


def _app_error(error: type[AppError]) -> Callable[[], Response]:
    def refuse() -> Response:
        return FastJSONResponse(error_body(error.code, error.detail), status_code=error.status_code)

    return refuse


def _payment_callback_refusal() -> Response:
    # WeChat Pay's own failure shape (the callback route answers its errors this way).
    return FastJSONResponse({"code": "FAIL", "message": "body too large"}, status_code=413)


def route_body_limits(settings: Settings, api_prefix: str) -> dict[str, BodyLimit]:
    """The limit of each path that differs from the JSON limit."""
    upload = BodyLimit(settings.max_upload_bytes + MULTIPART_FIELD_BYTES, _app_error(ImageTooLarge))
    batch = BodyLimit(
        settings.batch_max * settings.max_upload_bytes + MULTIPART_FIELD_BYTES,
        _app_error(BatchTooLarge),
    )
    paths = {
        "/classify": upload,
        "/local-classify": upload,
        "/edit/tasks": upload,
        "/geo/locate": upload,
        "/classify/batch": batch,
        "/classify/video": BodyLimit(
            settings.max_video_bytes + MULTIPART_FIELD_BYTES, _app_error(VideoTooLarge)
        ),
        "/billing/wechatpay/notify": BodyLimit(PAYMENT_CALLBACK_BYTES, _payment_callback_refusal),
    }
    return {api_prefix + path: limit for path, limit in paths.items()}


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` to stop it reading; never rendered."""


class BodyLimitMiddleware:
    """Plain ASGI (``BaseHTTPMiddleware`` costs more than a cache hit)."""

    def __init__(self, app: ASGIApp, default_bytes: int, routes: dict[str, BodyLimit]) -> None:
        self.app = app
        self.default = BodyLimit(default_bytes, _app_error(PayloadTooLarge))
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get(scope["path"].rstrip("/") or "/", self.default)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit.max_bytes:
                    await limit.refuse()(scope, receive, send)
                    return
                break

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app answers to the aborted read is replaced below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await limit.refuse()(scope, receive, send)
