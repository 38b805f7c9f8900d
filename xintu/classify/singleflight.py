"""Single flight: concurrent requests for the same image bytes share one inference.

Keyed by the SHA-256 of the received bytes (never by a client's claimed hash, which could
pair a false hash with someone else's picture). Within a process the followers await the
leader's future; a flight that has just landed still answers identical bytes for a few
seconds (a batch holding the same photo twice, a client retrying). With Redis, processes
coordinate through a short lock: the leader publishes its prediction under a result key
and followers elsewhere poll for it. While Redis is down, flights are per process only.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from functools import partial
from typing import cast

import orjson
from cachetools import TTLCache
from redis.asyncio import Redis

from xintu.categories import Category
from xintu.inference.base import Prediction
from xintu.redis_guard import RedisGuard, RedisUnavailable

_LOCK_PREFIX = "xintu:flight:lock:"
_RESULT_PREFIX = "xintu:flight:result:"
# Long enough for followers that poll; short so a fallback answer is not reused later.
_RESULT_TTL_S = 5
_POLL_S = 0.025
_RECENT_TTL_S = 5.0


class SingleFlight:
    def __init__(self, redis: RedisGuard | None, lock_ttl_s: float) -> None:
        self._redis = redis
        self._lock_ttl_ms = int(lock_ttl_s * 1000)
        self._inflight: dict[str, asyncio.Future[Prediction]] = {}
        self._recent: TTLCache[str, Prediction] = TTLCache(10_000, _RECENT_TTL_S)

    async def run(
        self, key: str, infer: Callable[[], Awaitable[Prediction]]
    ) -> tuple[Prediction, bool]:
        """The prediction for ``key`` and whether this call was the one that inferred it."""
        recent = self._recent.get(key)
        if recent is not None:
            return recent, False
        existing = self._inflight.get(key)
        if existing is not None:
            return await asyncio.shield(existing), False
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            prediction, leader = await self._run_across_processes(key, infer)
        except BaseException as exc:
            if not future.done():
                future.set_exception(exc)
                # Followers see the error; the leader re-raises it. Nobody else must warn.
                future.exception()
            raise
        else:
            future.set_result(prediction)
            self._recent[key] = prediction
            return prediction, leader
        finally:
            self._inflight.pop(key, None)

    async def _run_across_processes(
        self, key: str, infer: Callable[[], Awaitable[Prediction]]
    ) -> tuple[Prediction, bool]:
        if self._redis is None:
            return await infer(), True
        try:
            return await self._coordinate(self._redis, key, infer)
        except RedisUnavailable:
            # Redis failed before this call inferred (``_coordinate`` never lets a failure
            # after inference escape): infer here, the flight is per process for now.
            return await infer(), True

    async def _coordinate(
        self, redis: RedisGuard, key: str, infer: Callable[[], Awaitable[Prediction]]
    ) -> tuple[Prediction, bool]:
        token = secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_ttl_ms / 1000
        lock_key, result_key = _LOCK_PREFIX + key, _RESULT_PREFIX + key
        while True:
            raw = await redis.call(lambda r: r.get(result_key))
            if raw is not None:
                return _loads(cast(bytes, raw)), False
            locked = await redis.call(
                lambda r: r.set(lock_key, token, nx=True, px=self._lock_ttl_ms)
            )
            if locked:
                try:
                    prediction = await infer()
                    with contextlib.suppress(RedisUnavailable):
                        await redis.call(partial(_store_result, result_key, prediction))
                    return prediction, True
                finally:
                    with contextlib.suppress(RedisUnavailable):
                        await redis.call(lambda r: _release(r, lock_key, token))
            # Another process is inferring: wait for its result, or for its lock to go.
            while loop.time() < deadline:
                raw = await redis.call(lambda r: r.get(result_key))
                if raw is not None:
                    return _loads(cast(bytes, raw)), False
                if not await redis.call(lambda r: r.exists(lock_key)):
                    break
                await asyncio.sleep(_POLL_S)
            else:
                return await infer(), True


async def _store_result(result_key: str, prediction: Prediction, redis: Redis) -> None:
    await redis.set(result_key, _dumps(prediction), ex=_RESULT_TTL_S)


async def _release(redis: Redis, lock_key: str, token: str) -> None:
    if await redis.get(lock_key) == token.encode():
        await redis.delete(lock_key)


def _dumps(prediction: Prediction) -> bytes:
    return orjson.dumps(asdict(prediction))


def _loads(raw: bytes) -> Prediction:
    payload = orjson.loads(raw)
    payload["category"] = Category(payload["category"])
    return Prediction(**payload)
