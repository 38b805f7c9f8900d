"""The FastAPI application and its lifespan."""

from __future__ import annotations

import importlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI, Request, Response
from loguru import logger
from redis.asyncio import Redis

from xintu import __version__
from xintu.admin.api import router as admin_router
from xintu.admin.service import create_or_update_admin
from xintu.classify.api import router as classify_router
from xintu.classify.cache import ClassificationCache
from xintu.classify.service import ClassificationService
from xintu.classify.singleflight import SingleFlight
from xintu.classify.writer import WriteBehind
from xintu.config import Settings, get_settings
from xintu.db import Database
from xintu.errors import install_error_handlers
from xintu.health.api import router as health_router
from xintu.inference.base import Classifier
from xintu.inference.hybrid import CircuitBreaker, HybridClassifier, ProviderSlot
from xintu.inference.remote import RemoteClassifier, create_http_session, provider_configs
from xintu.logging import configure_logging, request_id_var
from xintu.ratelimit import RateLimiter
from xintu.responses import FastJSONResponse
from xintu.stats.api import router as stats_router
from xintu.stats.dashboard import install_dashboard
from xintu.stats.metrics import install_metrics
from xintu.stats.retention import LogPurger

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own settings."""
    settings = settings or get_settings()
    settings.ensure_secrets()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await _start_components(app, settings, stack)
            yield

    app = FastAPI(
        title="XinTu Album backend",
        version=__version__,
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.settings = settings
    app.state.local_classifier_factory = build_local_classifier
    install_error_handlers(app)
    install_metrics(app)
    install_dashboard(app)

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
    api.include_router(classify_router)
    api.include_router(health_router)
    api.include_router(admin_router)
    api.include_router(stats_router)
    app.include_router(api)
    return app


def build_local_classifier(settings: Settings) -> Classifier | None:
    """The offline pipeline when it is installed and enabled, else None."""
    if not settings.local_model_enabled:
        return None
    try:
        module = importlib.import_module("xintu.inference.local")
    except ImportError as exc:
        logger.warning("local classifier unavailable: {}", exc)
        return None
    local: Classifier = module.LocalClassifier(settings.data_dir)
    return local


async def _start_components(app: FastAPI, settings: Settings, stack: AsyncExitStack) -> None:
    """Create every long-lived client once; the exit stack closes them in reverse order."""
    database = Database(settings.database_url)
    stack.push_async_callback(database.dispose)
    app.state.db = database

    redis: Redis | None = None
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        stack.push_async_callback(redis.aclose)
    app.state.redis = redis

    http = create_http_session(settings.remote_max_concurrency)
    stack.push_async_callback(http.close)
    slots = [
        ProviderSlot(
            classifier=RemoteClassifier(config, http, settings.remote_timeout_s),
            breaker=CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_cooldown_s),
            configured=config.configured,
        )
        for config in provider_configs(settings)
    ]
    classifier = HybridClassifier(
        settings.inference_mode, slots, app.state.local_classifier_factory(settings)
    )
    app.state.classifier = classifier

    cache = ClassificationCache(
        database.engine,
        redis,
        quorum=settings.cache_quorum,
        memory_entries=settings.memory_cache_entries,
        memory_ttl_s=settings.memory_cache_ttl_s,
        redis_ttl_s=settings.redis_cache_ttl_s,
    )
    await cache.start()
    stack.push_async_callback(cache.stop)
    writer = WriteBehind(database.engine, settings.log_flush_interval_s)
    await writer.start()
    stack.push_async_callback(writer.stop)
    writer.observers.append(app.state.metrics.observe_log_row)

    # A follower waits at most as long as the leader may take over all providers.
    flight_ttl = settings.remote_timeout_s * max(1, len(slots)) + 30
    app.state.classification = ClassificationService(
        settings, cache, classifier, writer, SingleFlight(redis, flight_ttl), classifier.local
    )
    app.state.rate_limiter = RateLimiter(
        settings.redis_url, settings.rate_limit_classify, settings.rate_limit_check
    )
    await _start_admin_components(app, settings, stack, database)


async def _start_admin_components(
    app: FastAPI, settings: Settings, stack: AsyncExitStack, database: Database
) -> None:
    """The bootstrap admin, the admin login rate limit and the daily request_log purge."""
    if settings.admin_username and settings.admin_password:
        created = await create_or_update_admin(
            database.engine, settings.admin_username, settings.admin_password
        )
        logger.info(
            "admin {!r} {}", settings.admin_username, "created" if created else "is up to date"
        )
    # Its own limiter: guessing passwords is limited per IP whatever the other limits are.
    app.state.admin_login_limiter = RateLimiter(
        settings.redis_url, "0", settings.rate_limit_admin_login
    )
    purger = LogPurger(
        database.engine,
        settings.log_retention_days,
        settings.log_purge_interval_s,
        settings.log_purge_batch_size,
    )
    await purger.start()
    stack.push_async_callback(purger.stop)
    app.state.log_purger = purger


_default_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `xintu.main:app` is built on first access so that importing this module is side-effect free.
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(name)
