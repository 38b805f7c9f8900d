"""Statistics routes (DESIGN §4.2): admin only; logic and SQL live in ``service``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse

from xintu.deps import AdminClaims, SessionDep, SettingsDep
from xintu.errors import Forbidden, NotAuthenticated, responses
from xintu.stats import schemas, service

router = APIRouter(
    prefix="/stats", tags=["statistics"], responses=responses(NotAuthenticated, Forbidden)
)

MAX_DAYS = 366
Days7 = Annotated[int, Query(ge=1, le=MAX_DAYS, description="local days, today included")]
Days30 = Annotated[int, Query(ge=1, le=MAX_DAYS, description="local days, today included")]


@router.get("/today", response_model=schemas.TodayResponse)
async def stats_today(_: AdminClaims, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Today's requests, cache hits, calls, failures, users, latency and cost."""
    return {"success": True, "data": await service.today(session, settings)}


@router.get("/cache-efficiency", response_model=schemas.CacheEfficiencyResponse)
async def stats_cache_efficiency(
    _: AdminClaims, session: SessionDep, settings: SettingsDep, days: Days7 = 7
) -> dict[str, Any]:
    """Hit rate per day, uploads and bandwidth the cache avoided, and the cost it saved."""
    return {"success": True, "data": await service.cache_efficiency(session, settings, days)}


@router.get("/category-distribution", response_model=schemas.CategoryDistributionResponse)
async def stats_category_distribution(
    _: AdminClaims, session: SessionDep, settings: SettingsDep, days: Days30 = 30
) -> dict[str, Any]:
    """Classifications served per category (all eight) and the distinct images among them."""
    return {"success": True, "data": await service.category_distribution(session, settings, days)}


@router.get("/users/top", response_model=schemas.TopUsersResponse)
async def stats_top_users(
    _: AdminClaims,
    session: SessionDep,
    settings: SettingsDep,
    days: Days30 = 30,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """The most active callers with their cache hits, remote calls and last activity."""
    return {"success": True, "data": await service.top_users(session, settings, days, limit)}


@router.get("/costs", response_model=schemas.CostsResponse)
async def stats_costs(
    _: AdminClaims, session: SessionDep, settings: SettingsDep, days: Days30 = 30
) -> dict[str, Any]:
    """Remote calls, tokens and cost per provider and model, and what the cache saved."""
    return {"success": True, "data": await service.costs(session, settings, days)}


@router.get("/performance", response_model=schemas.PerformanceResponse)
async def stats_performance(
    _: AdminClaims,
    session: SessionDep,
    hours: Annotated[int, Query(ge=1, le=24 * MAX_DAYS)] = 24,
) -> dict[str, Any]:
    """Per inference method: count, success rate and p50/p95/p99 processing time."""
    return {"success": True, "data": await service.performance(session, hours)}


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "`stats` events"}},
)
async def stats_stream(
    _: AdminClaims, request: Request, settings: SettingsDep
) -> EventSourceResponse:
    """Server-Sent Events: one ``stats`` event per second with the last minute's requests/s,
    hit rate, p95 and errors, provider circuit states and the edit queue depth."""
    live = request.app.state.live_stats
    interval = settings.stats_stream_interval_s

    async def events() -> AsyncIterator[dict[str, str]]:
        while True:
            yield {"event": "stats", "data": orjson.dumps(await live.snapshot()).decode()}
            # On the interval's ticks, however long the snapshot took.
            await asyncio.sleep(interval - time.time() % interval)

    return EventSourceResponse(events(), ping=15)
