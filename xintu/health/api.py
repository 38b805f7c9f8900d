"""``GET /health``: database, Redis, providers and their circuits, the local model."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import text

from xintu import __version__
from xintu.db import Database
from xintu.health.database import DatabaseState
from xintu.inference.hybrid import CircuitState, HybridClassifier
from xintu.redis_guard import RedisGuard
from xintu.responses import FastJSONResponse

router = APIRouter(tags=["operations"])
_PROBE_TIMEOUT_S = 2.0


async def _probe(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check, timeout=_PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ok"
        return {"ok": False, "latency_ms": None, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def _ping_database(database: Database) -> None:
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@router.get("/health")
async def health(request: Request) -> FastJSONResponse:
    """Service health; 503 when the database is down."""
    state = request.app.state
    database = await _probe(_ping_database(state.db))
    # The probes also tell the request paths: a recovery is noticed without waiting for
    # their own retry pause.
    database_state: DatabaseState = state.database_state
    if database["ok"]:
        database_state.mark_up()
    redis_guard: RedisGuard | None = state.redis_guard
    redis = None
    if redis_guard is not None:
        redis = await _probe(redis_guard.redis.ping())
        if redis["ok"]:
            redis_guard.mark_up()
    schema_problem = state.schema_gate.problem
    if database["ok"] and schema_problem is not None:
        # Reachable but not usable by this release (no schema yet, or an older one).
        database.update(ok=False, error="schema_not_ready", detail=schema_problem)
    classifier: HybridClassifier = state.classifier
    providers = [
        {
            "name": slot.classifier.name,
            "model": slot.classifier.model,
            "configured": slot.configured,
            "available": slot.configured and slot.breaker.state is not CircuitState.open,
            "circuit": slot.breaker.state.value,
        }
        for slot in classifier.remote
    ]
    local = classifier.local
    local_model = {
        "available": bool(getattr(local, "available", local is not None)),
        "loaded": bool(getattr(local, "loaded", False)),
    }
    any_remote = any(provider["available"] for provider in providers)
    if not database["ok"]:
        status = "down"
    elif (redis is not None and not redis["ok"]) or not (any_remote or local_model["available"]):
        status = "degraded"
    elif any(p["configured"] and not p["available"] for p in providers):
        status = "degraded"
    else:
        status = "ok"
    body = {
        "success": status != "down",
        "status": status,
        "version": __version__,
        "inference_mode": classifier.mode.value,
        "database": database,
        "redis": redis,
        "providers": providers,
        "local_model": local_model,
    }
    return FastJSONResponse(body, status_code=503 if status == "down" else 200)
