"""The FastAPI application and its lifespan."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response

from xintu import __version__
from xintu.config import Settings, get_settings
from xintu.db import Database
from xintu.errors import install_error_handlers
from xintu.geo.api import router as geo_router
from xintu.logging import configure_logging, request_id_var
from xintu.responses import FastJSONResponse

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own settings."""
    settings = settings or get_settings()
    settings.ensure_secrets()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings.database_url)
        try:
            yield
        finally:
            await app.state.db.dispose()

    app = FastAPI(
        title="XinTu Album backend",
        version=__version__,
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.settings = settings
    install_error_handlers(app)

    @app.middleware("http")
    async def request_id_middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request_id = request_id[:36]
        request.state.request_id = request_id
        request.state.started = time.perf_counter()
        token = request_id_var.set(request_id)
        try:
            response = await call_next(request)
        finally:
            request_id_var.reset(token)
        response.headers["X-Request-ID"] = request_id
        return response

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(geo_router)
    app.include_router(api)
    return app


def __getattr__(name: str) -> FastAPI:
    # `xintu.main:app` is built on first access so importing the module has no side effects.
    if name == "app":
        return create_app()
    raise AttributeError(name)
