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
from xintu.health.api import router as health_router
from xintu.inference.base import Classifier, ClassifierError
from xintu.inference.hybrid import CircuitBreaker, HybridClassifier, ProviderSlot
from xintu.inference.local import LocalClassifier
from xintu.inference.remote import RemoteClassifier, create_http_session, provider_configs
from xintu.logging import configure_logging
from xintu.ratelimit import RateLimiter
from xintu.request_id import RequestIdMiddleware
from xintu.responses import FastJSONResponse
from xintu.stats.api import router as stats_router
from xintu.stats.dashboard import install_dashboard
from xintu.stats.metrics import install_metrics
from xintu.stats.retention import purge_expired_logs
from xintu.users.api import router as users_router
from xintu.users.crypto import DataCipher
from xintu.users.wechat import WechatClient
from xintu.web import mount_web

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

    app.add_middleware(RequestIdMiddleware)

    api = APIRouter(prefix=API_PREFIX)
    api.include_router(classify_router)
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

    redis: Redis | None = None
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        stack.push_async_callback(redis.aclose)
    app.state.redis = redis

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
        redis,
        quorum=settings.cache_quorum,
        memory_entries=settings.memory_cache_entries,
        memory_ttl_s=settings.memory_cache_ttl_s,
        redis_ttl_s=settings.redis_cache_ttl_s,
    )
    await cache.start()
    stack.push_async_callback(cache.stop)
    writer = WriteBehind(database, settings.log_flush_interval_s)
    await writer.start()
    stack.push_async_callback(writer.stop)
    writer.observers.append(app.state.metrics.observe_log_row)

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
        SingleFlight(redis, flight_ttl),
        classifier.local,
        credit_gate=credit_gate,
    )
    # In-memory broker: edits run in this process; with Redis, `xintu worker` runs them.
    app.state.edit = await start_edit_runtime(settings, database, http, stack, worker=False)
    app.state.rate_limiter = RateLimiter(
        settings.redis_url, redis, settings.rate_limit_classify, settings.rate_limit_check
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
        settings.redis_url, app.state.redis, "0", settings.rate_limit_admin_login
    )
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


_default_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    # `xintu.main:app` is built on first access so that importing this module is side-effect free.
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(name)
