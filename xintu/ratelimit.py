"""Per-caller rate limits (the ``limits`` library): in memory, or shared through Redis.

One limiter holds every scope; each scope counts per caller key (DESIGN §3: a WeChat user,
else an IP address; see ``xintu.clientip``). While Redis is down the limits are kept in this
process's memory (each process then allows the full rate: looser, but never off and never
an error), and shared again when Redis answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

from xintu.errors import RateLimited
from xintu.redis_guard import RedisGuard, RedisUnavailable


class RateLimiter:
    def __init__(
        self, redis_url: str | None, redis: RedisGuard | None, limits: Mapping[str, str]
    ) -> None:
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared: SlidingWindowCounterRateLimiter | None = None
        self._redis = redis if redis_url else None
        if redis_url and redis is not None:
            # Share the app's connection pool: it is closed with the app's Redis client.
            storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix="xintu:ratelimit",
                connection_pool=redis.redis.connection_pool,  # type: ignore[arg-type]
            )
            self._shared = SlidingWindowCounterRateLimiter(storage)
        self._limits = {scope: _parse(value) for scope, value in limits.items()}

    async def hit(self, scope: str, caller_key: str, cost: int = 1) -> None:
        """Count ``cost`` requests for the caller; 429 ``rate_limited`` beyond the limit.

        A cost above the whole limit is charged as the whole limit: such a request (a batch
        larger than the limit) uses up the window instead of being refused forever."""
        item = self._limits[scope]
        if item is None:
            return
        cost = min(cost, item.amount)
        limiter = self._local
        allowed: bool | None = None
        if self._redis is not None and self._shared is not None:
            shared = self._shared

            async def shared_hit(_: Redis) -> bool:
                return await shared.hit(item, scope, caller_key, cost=cost)

            try:
                allowed = await self._redis.call(shared_hit)
                limiter = shared
            except RedisUnavailable:
                pass
        if allowed is None:
            allowed = await self._local.hit(item, scope, caller_key, cost=cost)
        if allowed:
            return
        retry_after = 1
        try:
            stats = await limiter.get_window_stats(item, scope, caller_key)
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:  # noqa: BLE001 - Redis failed between two calls: a guess will do
            pass
        raise RateLimited(
            f"Rate limit {item} exceeded; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def _parse(value: str) -> RateLimitItem | None:
    if value.strip() in ("", "0"):
        return None
    return parse(value)
