"""Security headers on every response: the pages may not be framed, sniffed into another
type or leak their URL, and each page may load only this service's own files.

A response that sets a header itself (the admin dashboard's stricter CSP) keeps its own.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The album and the dashboard load only their own files; thumbnails are blob: URLs of
# the user's local photos; the scripts talk only to this service.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
# JSON, images and text are data, never documents that run anything.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
# Swagger UI and ReDoc load their scripts from a CDN (and are off outside development).
_DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope["path"].startswith(_DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                additions = [header for header in _COMMON if header[0] not in present]
                if not is_docs and b"content-security-policy" not in present:
                    content_type = next(
                        (value for name, value in headers if name.lower() == b"content-type"),
                        b"",
                    )
                    csp = PAGE_CSP if content_type.startswith(b"text/html") else DATA_CSP
                    additions.append((b"content-security-policy", csp.encode()))
                message["headers"] = headers + additions
            await send(message)

        await self.app(scope, receive, send_with_headers)
