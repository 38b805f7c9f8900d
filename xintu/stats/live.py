"""The live numbers of ``GET /stats/stream``: the last minute, second by second.

Every request_log row (the same observer hook as ``/metrics``) lands in a per-second
bucket of this process: requests, cache hits, errors and a latency histogram. Without
Redis those buckets are the whole truth (one process). With Redis, each process adds its
finished seconds once a second into one shared hash per second (``HINCRBY``: the
instances' counts add up in Redis) that expires after the window, and publishes its
providers' circuit states; the snapshot sums the window's hashes plus what this process
has not flushed yet. Latency is a histogram with buckets 10 % apart, so p95 is the upper
bound of the bucket that holds it: at most 10 % above the exact value.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from xintu.db import Database
from xintu.inference.hybrid import CircuitState, HybridClassifier
from xintu.models import ImageEditTask

_REDIS_SECOND = "xintu:live:s:"
_REDIS_CIRCUITS = "xintu:live:circuits"
_LATENCY_BASE_MS = 0.5
_LATENCY_RATIO = 1.1
_MAX_BUCKET = 160  # 0.5 ms × 1.1^160 ≈ 2 hours
# An instance whose circuit report is older than this has stopped.
_INSTANCE_STALE_S = 5.0
_SEVERITY = {CircuitState.closed.value: 0, CircuitState.half_open.value: 1, "open": 2}


def latency_bucket(ms: float) -> int:
    if ms <= _LATENCY_BASE_MS:
        return 0
    return min(_MAX_BUCKET, math.ceil(math.log(ms / _LATENCY_BASE_MS, _LATENCY_RATIO)))


def bucket_upper_ms(bucket: int) -> float:
    return float(_LATENCY_BASE_MS * _LATENCY_RATIO**bucket)


@dataclass(slots=True)
class SecondCounts:
    requests: int = 0
    hits: int = 0
    errors: int = 0
    latency: Counter[int] = field(default_factory=Counter)

    def add(self, other: SecondCounts) -> None:
        self.requests += other.requests
        self.hits += other.hits
        self.errors += other.errors
        self.latency.update(other.latency)

    def fields(self) -> dict[str, int]:
        """As a Redis hash: counters and ``l<bucket>`` latency counts."""
        values = {"requests": self.requests, "hits": self.hits, "errors": self.errors}
        values.update({f"l{bucket}": count for bucket, count in self.latency.items()})
        return values

    @classmethod
    def from_fields(cls, raw: dict[bytes, bytes]) -> SecondCounts:
        counts = cls()
        for key, value in raw.items():
            name, number = key.decode(), int(value)
            if name.startswith("l"):
                counts.latency[int(name[1:])] += number
            elif name in ("requests", "hits", "errors"):
                setattr(counts, name, number)
        return counts


def p95_ms(latency: Counter[int]) -> float:
    total = sum(latency.values())
    if not total:
        return 0.0
    rank = math.ceil(0.95 * total)
    seen = 0
    for bucket in sorted(latency):
        seen += latency[bucket]
        if seen >= rank:
            return round(bucket_upper_ms(bucket), 1)
    return 0.0  # pragma: no cover - the loop always reaches the rank


class LiveStats:
    def __init__(
        self,
        *,
        window_s: int,
        database: Database,
        redis: Redis | None,
        classifier: HybridClassifier,
        min_refresh_s: float,
    ) -> None:
        self.window_s = window_s
        self.instance_id = uuid.uuid4().hex[:12]
        self._database = database
        self._redis = redis
        self._classifier = classifier
        self._min_refresh_s = min_refresh_s
        # epoch second → counts of this process (without Redis: the window; with: unflushed)
        self._seconds: dict[int, SecondCounts] = {}
        self._lock = asyncio.Lock()
        self._last: tuple[float, dict[str, Any]] | None = None
        self._redis_failing = False

    def observe(self, row: dict[str, Any]) -> None:
        """A request_log row was written: count it in its second. Cheap, never raises."""
        second = int(time.time())
        counts = self._seconds.get(second)
        if counts is None:
            counts = self._seconds[second] = SecondCounts()
        counts.requests += 1
        if row.get("from_cache"):
            counts.hits += 1
        if int(row.get("status_code") or 200) >= 400:
            counts.errors += 1
        counts.latency[latency_bucket(float(row.get("processing_time_ms") or 0))] += 1

    async def flush(self) -> None:
        """With Redis: add this process's finished seconds to the shared hashes and report
        its circuit states. Seconds older than the window are forgotten either way (while
        Redis is down they stay here, so this process still sees its own traffic)."""
        now = int(time.time())
        for second in [s for s in self._seconds if s <= now - self.window_s]:
            del self._seconds[second]
        if self._redis is None:
            return
        async with self._lock:
            finished = {s: c for s, c in self._seconds.items() if s < now}
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for second, counts in finished.items():
                        key = f"{_REDIS_SECOND}{second}"
                        for name, value in counts.fields().items():
                            pipe.hincrby(key, name, value)
                        pipe.expire(key, self.window_s + 10)
                    pipe.hset(
                        _REDIS_CIRCUITS,
                        self.instance_id,
                        orjson.dumps({"at": time.time(), "circuits": self._circuits()}),
                    )
                    # Gone once every instance has stopped.
                    pipe.expire(_REDIS_CIRCUITS, 60)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                if not self._redis_failing:
                    logger.warning("live statistics: Redis unavailable ({}); local only", exc)
                self._redis_failing = True
                return
            self._redis_failing = False
            for second in finished:
                del self._seconds[second]

    async def snapshot(self) -> dict[str, Any]:
        """The numbers of the last ``window_s`` seconds; computed at most once per refresh
        interval however many dashboards are open."""
        if self._last is not None and time.monotonic() - self._last[0] < self._min_refresh_s:
            return self._last[1]
        now = int(time.time())
        seconds = list(range(now - self.window_s + 1, now + 1))
        per_second = {second: SecondCounts() for second in seconds}
        instances: list[dict[str, Any]] = []
        degraded = False
        async with self._lock:
            if self._redis is not None:
                try:
                    per_second, instances = await self._from_redis(seconds)
                except (RedisError, OSError):
                    degraded = True
            for second, counts in self._seconds.items():
                if second in per_second:
                    per_second[second].add(counts)
        if not instances:
            instances = [{"instance": self.instance_id, "circuits": self._circuits()}]
        total = SecondCounts()
        for counts in per_second.values():
            total.add(counts)
        data = {
            "at": datetime.now(UTC).isoformat(),
            "window_s": self.window_s,
            "instances": len(instances),
            "requests": total.requests,
            "requests_per_s": round(total.requests / self.window_s, 3),
            "cache_hits": total.hits,
            "hit_rate": round(total.hits / total.requests, 4) if total.requests else 0.0,
            "errors": total.errors,
            "p95_ms": p95_ms(total.latency),
            "per_second": [per_second[second].requests for second in seconds],
            "providers": _merge_circuits(instances),
            "edit_queue_depth": await self._edit_queue_depth(),
            # Redis is configured but unreachable: these are this instance's numbers only.
            "degraded": degraded,
        }
        self._last = (time.monotonic(), data)
        return data

    async def _from_redis(
        self, seconds: list[int]
    ) -> tuple[dict[int, SecondCounts], list[dict[str, Any]]]:
        assert self._redis is not None
        async with self._redis.pipeline(transaction=False) as pipe:
            for second in seconds:
                pipe.hgetall(f"{_REDIS_SECOND}{second}")
            pipe.hgetall(_REDIS_CIRCUITS)
            results = await pipe.execute()
        per_second = {
            second: SecondCounts.from_fields(cast(dict[bytes, bytes], raw))
            for second, raw in zip(seconds, results[:-1], strict=True)
        }
        instances, stale = [], []
        for instance, raw in cast(dict[bytes, bytes], results[-1]).items():
            report = orjson.loads(raw)
            if time.time() - report["at"] > _INSTANCE_STALE_S:
                stale.append(instance)
            else:
                instances.append({"instance": instance.decode(), **report})
        if stale:
            await self._redis.hdel(_REDIS_CIRCUITS, *stale)
        return per_second, instances

    def _circuits(self) -> dict[str, str]:
        return {
            slot.classifier.name: slot.breaker.state.value
            for slot in self._classifier.remote
            if slot.configured
        }

    async def _edit_queue_depth(self) -> int | None:
        """Edit tasks waiting for a worker: in the database, so the same for every instance;
        None while the database cannot answer."""
        try:
            async with self._database.sessionmaker() as session:
                count = await session.scalar(
                    select(func.count())
                    .select_from(ImageEditTask)
                    .where(ImageEditTask.status == "queued")
                )
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("live statistics: edit queue depth unavailable ({})", exc)
            return None
        return int(count or 0)


def _merge_circuits(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per provider: how many instances see each circuit state, and the worst of them."""
    providers: dict[str, Counter[str]] = {}
    for instance in instances:
        for name, state in instance["circuits"].items():
            providers.setdefault(name, Counter())[state] += 1
    return [
        {
            "name": name,
            "circuit": max(states, key=lambda state: _SEVERITY.get(state, 0)),
            "instances": {state.value: states.get(state.value, 0) for state in CircuitState},
        }
        for name, states in sorted(providers.items())
    ]
