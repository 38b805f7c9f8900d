"""Per-caller rate limits (the ``limits`` library): in memory, or shared through Redis.

One limiter holds every scope; each scope counts per caller key (DESIGN §3: a WeChat user,
else an IP address; see ``xintu.clientip``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

from xintu.errors import RateLimited


class RateLimiter:
    def __init__(
        self, redis_url: str | None, redis: Redis | None, limits: Mapping[str, str]
    ) -> None:
        storage: Storage
        if redis_url and redis is not None:
            # Share the app's connection pool: it is closed with the app's Redis client.
            storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix="xintu:ratelimit",
                connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            )
        else:
            storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._limits = {scope: _parse(value) for scope, value in limits.items()}

    async def hit(self, scope: str, caller_key: str, cost: int = 1) -> None:
        """Count ``cost`` requests for the caller; 429 ``rate_limited`` beyond the limit.

        A cost above the whole limit is charged as the whole limit: such a request (a batch
        larger than the limit) uses up the window instead of being refused forever."""
        item = self._limits[scope]
        if item is None:
            return
        cost = min(cost, item.amount)
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
