"""Static pages served by the service: the album at ``/`` (no build step, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

ALBUM_DIR = Path(__file__).parent / "album"


def mount_web(app: FastAPI) -> None:
    """``/`` is the album page; its scripts and styles are under ``/album/``."""

    @app.get("/", include_in_schema=False)
    async def album_page() -> FileResponse:
        return FileResponse(ALBUM_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/album", StaticFiles(directory=ALBUM_DIR), name="album")
