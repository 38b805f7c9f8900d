"""The FastAPI application and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import aiohttp
from fastapi import APIRouter, FastAPI
from loguru import logger
from redis.asyncio import Redis

from xintu import __version__
from xintu.admin.api import router as admin_router
from xintu.admin.service import create_or_update_admin
from xintu.background import run_every
from xintu.billing.api import router as billing_router
from xintu.billing.gate import BillingCreditGate
from xintu.billing.service import Billing, close_expired_orders
from xintu.billing.wechatpay import WechatPay
from xintu.body_limit import BodyLimitMiddleware, route_body_limits
from xintu.classify.api import router as classify_router
from xintu.classify.cache import ClassificationCache
from xintu.classify.service import ClassificationService
from xintu.classify.singleflight import SingleFlight
from xintu.classify.writer import WriteBehind
from xintu.config import Settings, get_settings
from xintu.db import Database
from xintu.edit.api import router as edit_router
from xintu.edit.tasks import start_edit_runtime
from xintu.errors import install_error_handlers
from xintu.geo.api import router as geo_router
from xintu.headers import SecurityHeadersMiddleware
from xintu.health.api import router as health_router
from xintu.health.database import DatabaseState, install_database_unavailable_handler
from xintu.inference.base import Classifier, ClassifierError
from xintu.inference.hybrid import CircuitBreaker, HybridClassifier, ProviderSlot
from xintu.inference.local import LocalClassifier
from xintu.inference.remote import RemoteClassifier, create_http_session, provider_configs
from xintu.logging import configure_logging
from xintu.ratelimit import RateLimiter
from xintu.redis_guard import RedisGuard
from xintu.request_id import RequestIdMiddleware
from xintu.responses import FastJSONResponse
from xintu.startup import SchemaGate, SchemaGateMiddleware
from xintu.stats.api import router as stats_router
from xintu.stats.dashboard import install_dashboard
from xintu.stats.live import LiveStats
from xintu.stats.metrics import install_metrics
from xintu.stats.retention import purge_expired_logs
from xintu.users.accounts import AccountStatus
from xintu.users.api import router as users_router
from xintu.users.crypto import DataCipher
from xintu.users.wechat import WechatClient
from xintu.video.api import router as video_router
from xintu.video.service import VideoService
from xintu.web import mount_web

API_PREFIX = "/api/v1"
_REDIS_TIMEOUT_S = 2.0


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own settings."""
    settings = settings or get_settings()
    settings.ensure_secrets()
    configure_logging(
        settings.log_level,
        settings.log_json,
        settings.log_file,
        settings.log_rotation,
        settings.log_retention,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await _start_components(app, settings, stack)
            yield

    docs = bool(settings.docs_enabled)
    app = FastAPI(
        title="XinTu Album backend",
        version=__version__,
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.local_classifier_factory = build_local_classifier
    app.state.database_state = DatabaseState()
    install_error_handlers(app)
    install_database_unavailable_handler(app, app.state.database_state)
    # Inside the metrics middleware, so that its 413s are counted too.
    app.add_middleware(
        BodyLimitMiddleware,
        default_bytes=settings.max_json_bytes,
        routes=route_body_limits(settings, API_PREFIX),
    )
    install_metrics(app)
    install_dashboard(app)

    app.state.schema_gate = SchemaGate(settings.database_url, settings.migrate_on_start)
    app.add_middleware(SchemaGateMiddleware, gate=app.state.schema_gate)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(classify_router)
    api.include_router(video_router)
    api.include_router(health_router)
    api.include_router(geo_router)
    api.include_router(users_router)
    api.include_router(billing_router)
    api.include_router(edit_router)
    api.include_router(admin_router)
    api.include_router(stats_router)
    app.include_router(api)
    mount_web(app)
    return app


def build_local_classifier(settings: Settings) -> Classifier | None:
    """The offline pipeline unless disabled (its models load lazily, or at start-up when
    ``XINTU_LOCAL_PRELOAD`` is set)."""
    if not settings.local_model_enabled:
        return None
    return LocalClassifier(settings.data_dir)


async def _start_components(app: FastAPI, settings: Settings, stack: AsyncExitStack) -> None:
    """Create every long-lived client once; the exit stack closes them in reverse order."""
    database = Database(settings.database_url)
    stack.push_async_callback(database.dispose)
    app.state.db = database
    app.state.accounts = AccountStatus(database.sessionmaker, settings.account_status_ttl_s)
    # Migrates an empty database (under the lock) or finds it migrated; if neither, the
    # server starts and says why (xintu/startup.py). The bootstrap admin needs the tables.
    await app.state.schema_gate.start(stack, partial(_bootstrap_admin, settings, database))

    redis: Redis | None = None
    redis_guard: RedisGuard | None = None
    if settings.redis_url:
        # Timeouts: a Redis that stops answering must fail fast into the fallbacks.
        redis = Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=_REDIS_TIMEOUT_S,
            socket_timeout=_REDIS_TIMEOUT_S,
        )
        stack.push_async_callback(redis.aclose)
        redis_guard = RedisGuard(redis)
    app.state.redis = redis
    app.state.redis_guard = redis_guard

    http = create_http_session(settings.remote_max_concurrency)
    stack.push_async_callback(http.close)
    slots = [
        ProviderSlot(
            classifier=RemoteClassifier(
                config, http, settings.remote_timeout_s, settings.remote_max_side
            ),
            breaker=CircuitBreaker(settings.circuit_failure_threshold, settings.circuit_cooldown_s),
            configured=config.configured,
        )
        for config in provider_configs(settings)
    ]
    local = app.state.local_classifier_factory(settings)
    if isinstance(local, LocalClassifier):
        stack.callback(local.close)
        if local.settings.preload:
            try:
                await local.load()
            except ClassifierError as exc:
                logger.warning("local classifier not loaded: {}", exc)
    classifier = HybridClassifier(settings.inference_mode, slots, local)
    app.state.classifier = classifier

    cache = ClassificationCache(
        database,
        redis_guard,
        quorum=settings.cache_quorum,
        memory_entries=settings.memory_cache_entries,
        memory_ttl_s=settings.memory_cache_ttl_s,
        redis_ttl_s=settings.redis_cache_ttl_s,
        database_state=app.state.database_state,
    )
    await cache.start()
    stack.push_async_callback(cache.stop)
    writer = WriteBehind(
        database,
        settings.log_flush_interval_s,
        max_backlog=settings.log_max_backlog,
        wait_timeout_s=settings.log_backpressure_timeout_s,
    )
    await writer.start()
    stack.push_async_callback(writer.stop)
    writer.observers.append(app.state.metrics.observe_log_row)
    live = LiveStats(
        window_s=settings.stats_window_s,
        database=database,
        redis=redis,
        classifier=classifier,
        min_refresh_s=settings.stats_stream_interval_s / 2,
    )
    writer.observers.append(live.observe)
    app.state.live_stats = live
    run_every(stack, 1.0, live.flush, "live statistics flush")

    # WeChat login and WeChat Pay share one HTTP session of their own.
    wechat_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50))
    stack.push_async_callback(wechat_http.close)
    app.state.data_cipher = DataCipher(settings.data_key or "")
    app.state.wechat = WechatClient(
        wechat_http,
        settings.wechat_api_base,
        settings.wechat_timeout_s,
        appid=settings.wechat_appid,
        secret=settings.wechat_secret,
        mp_appid=settings.wechat_mp_appid,
        mp_secret=settings.wechat_mp_secret,
    )
    wechatpay = WechatPay.from_settings(settings, wechat_http)
    billing = Billing(settings, database.sessionmaker, wechatpay)
    app.state.billing = billing
    if billing.wechatpay is not None:
        run_every(
            stack,
            settings.order_close_interval_s,
            partial(close_expired_orders, billing),
            "closing of expired orders",
        )
    credit_gate = BillingCreditGate(database.sessionmaker) if settings.billing_enabled else None

    # A follower waits at most as long as the leader may take over all providers.
    flight_ttl = settings.remote_timeout_s * max(1, len(slots)) + 30
    app.state.classification = ClassificationService(
        settings,
        cache,
        classifier,
        writer,
        SingleFlight(redis_guard, flight_ttl),
        classifier.local,
        credit_gate=credit_gate,
    )
    app.state.video = VideoService(settings, app.state.classification)
    # In-memory broker: edits run in this process; with Redis, `xintu worker` runs them.
    app.state.edit = await start_edit_runtime(settings, database, http, stack, worker=False)
    app.state.rate_limiter = RateLimiter(
        settings.redis_url,
        redis_guard,
        {
            "classify": settings.rate_limit_classify,
            "check": settings.rate_limit_check,
            # Guessing passwords is limited per IP whatever the other limits are.
            "admin_login": settings.rate_limit_admin_login,
            "guest_login": settings.rate_limit_guest_login,
            "wechat_login": settings.rate_limit_wechat_login,
            "orders": settings.rate_limit_orders,
            "edit_submits": settings.rate_limit_edit_submits,
        },
    )
    await _start_admin_components(settings, stack, database)


async def _start_admin_components(
    settings: Settings, stack: AsyncExitStack, database: Database
) -> None:
    """The daily request_log purge."""
    run_every(
        stack,
        settings.log_purge_interval_s,
        partial(
            purge_expired_logs,
            database.engine,
            settings.log_retention_days,
            settings.log_purge_batch_size,
        ),
        "request_log purge",
    )


async def _bootstrap_admin(settings: Settings, database: Database) -> None:
    """Create or update the XINTU_ADMIN_USERNAME admin."""
    if settings.admin_username and settings.admin_password:
        created = await create_or_update_admin(
            database.engine, settings.admin_username, settings.admin_password
        )
        logger.info(
            "admin {!r} {}", settings.admin_username, "created" if created else "is up to date"
        )


_default_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `xintu.main:app` is built on first access so that importing this module is side-effect free.
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(name)
