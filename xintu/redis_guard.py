"""Redis as an optional accelerator: when it fails, callers use their in-process or
database fallback, and Redis is tried again after a growing pause.

Every user of Redis (hot cache, single flight, rate limits) goes through one ``RedisGuard``,
so an outage is noticed once and a dead server is not dialled on every request. The first
call after the pause is the probe: if it succeeds Redis is used again, without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

T = TypeVar("T")

# What a Redis that is down, restarting or unreachable raises.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
_FIRST_PAUSE_S = 0.5
_MAX_PAUSE_S = 15.0


class RedisUnavailable(Exception):
    """Redis is down (or in its pause after a failure): use the fallback."""


class RedisGuard:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._retry_at = 0.0
        self._pause_s = 0.0
        self._probing = False
        # Called (synchronously) when Redis answers again after an outage.
        self.on_recovery: list[Callable[[], None]] = []

    @property
    def available(self) -> bool:
        """Whether a call would reach Redis now (up, or its pause is over)."""
        return self._pause_s == 0.0 or (not self._probing and time.monotonic() >= self._retry_at)

    async def call(self, operation: Callable[[Redis], Awaitable[T]]) -> T:
        """``operation(redis)``, or ``RedisUnavailable`` at once while Redis is paused."""
        probe = self._pause_s > 0.0
        if probe:
            if self._probing or time.monotonic() < self._retry_at:
                raise RedisUnavailable()
            # One caller probes; the others keep to their fallback until it answers.
            self._probing = True
        try:
            result = await operation(self.redis)
        except REDIS_FAILURES as exc:
            self.mark_failed(exc)
            raise RedisUnavailable() from exc
        finally:
            self._probing = False
        self.mark_up()
        return result

    def mark_failed(self, exc: BaseException) -> None:
        if self._pause_s == 0.0:
            logger.warning("Redis unavailable ({!r}); using in-process fallbacks", exc)
        self._pause_s = min(_MAX_PAUSE_S, max(_FIRST_PAUSE_S, self._pause_s * 2))
        self._retry_at = time.monotonic() + self._pause_s

    def mark_up(self) -> None:
        if self._pause_s == 0.0:
            return
        self._pause_s = 0.0
        logger.info("Redis is back; shared cache, single flight and rate limits resume")
        for callback in self.on_recovery:
            callback()
