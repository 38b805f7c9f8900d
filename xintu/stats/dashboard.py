"""``/admin``: the statistics dashboard, static files under ``xintu/web/admin`` (no build
step, nothing fetched from elsewhere: the page works offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "admin"
# The page loads only its own files and talks only to this service.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def install_dashboard(app: FastAPI) -> None:
    @app.get("/admin", include_in_schema=False)
    async def admin_dashboard() -> FileResponse:
        """The admin dashboard page."""
        return FileResponse(
            WEB_DIR / "index.html",
            headers={
                "Content-Security-Policy": _CSP,
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    app.mount("/admin/static", StaticFiles(directory=WEB_DIR), name="admin-static")
