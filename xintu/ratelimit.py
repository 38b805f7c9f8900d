"""Per-caller rate limits (the ``limits`` library): in memory, or shared through Redis."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from xintu.errors import RateLimited


class RateLimiter:
    def __init__(self, redis_url: str | None, classify: str, check: str) -> None:
        storage: Storage
        if redis_url:
            # redis-py (already a dependency) rather than the default coredis client.
            storage = RedisStorage(
                "async+" + redis_url, implementation="redispy", key_prefix="xintu:ratelimit"
            )
        else:
            storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._limits: dict[str, RateLimitItem | None] = {
            "classify": _parse(classify),
            "check": _parse(check),
        }

    async def hit(self, scope: str, caller_key: str, cost: int = 1) -> None:
        """Count ``cost`` requests for the caller; 429 ``rate_limited`` beyond the limit."""
        item = self._limits[scope]
        if item is None:
            return
        if await self._limiter.hit(item, scope, caller_key, cost=cost):
            return
        stats = await self._limiter.get_window_stats(item, scope, caller_key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Rate limit {item} exceeded; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )


def _parse(value: str) -> RateLimitItem | None:
    if value.strip() in ("", "0"):
        return None
    return parse(value)
