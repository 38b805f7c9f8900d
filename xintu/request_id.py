"""``X-Request-ID``: on every response and in every log line of the request."""

from __future__ import annotations

import itertools
import os
import re
import secrets

from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xintu.errors import error_body
from xintu.logging import request_id_var
from xintu.responses import FastJSONResponse

_request_counter = itertools.count()
# A client's id is kept only when it is printable ASCII that fits request_log.request_id.
_CLIENT_REQUEST_ID = re.compile(r"[!-~]{1,36}")
_request_id_process: tuple[int, str] = (0, "")


def _new_request_id() -> str:
    """Unique without a system call per request: a random per-process prefix and a counter
    (``uuid4`` reads the OS random source each time)."""
    global _request_id_process
    pid = os.getpid()
    if _request_id_process[0] != pid:  # first use in this (possibly forked) process
        _request_id_process = (pid, secrets.token_hex(6))
    return f"{_request_id_process[1]}{next(_request_counter):012x}"


class RequestIdMiddleware:
    """``X-Request-ID`` on every response (the client's own id if it sent one), and in every
    log line. Plain ASGI: ``BaseHTTPMiddleware`` would cost more than a cache hit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _CLIENT_REQUEST_ID.fullmatch(candidate):
                    request_id = candidate
                break
        request_id = request_id or _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode("latin-1"))

        started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            # A bug, not a client's mistake: log it, and still answer in the API's shape
            # with the request id the client can quote.
            logger.exception("unhandled error")
            if started:
                raise
            response = FastJSONResponse(
                error_body("internal_error", f"Internal error; request id {request_id}"),
                status_code=500,
            )
            await response(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)
