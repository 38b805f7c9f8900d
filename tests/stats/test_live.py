"""The live numbers when Redis is configured but down: this instance's numbers, flagged."""

from __future__ import annotations

from collections import Counter

from redis.asyncio import Redis

from tests.fixtures.live_server import free_port
from xintu.config import InferenceMode
from xintu.db import Database
from xintu.inference.hybrid import HybridClassifier
from xintu.stats.live import LiveStats, bucket_upper_ms, latency_bucket, p95_ms


async def test_redis_down_leaves_this_instances_numbers(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    live = LiveStats(
        window_s=60,
        database=database,
        redis=redis,
        classifier=HybridClassifier(InferenceMode.hybrid, [], None),
        min_refresh_s=0,
    )
    try:
        for status in (200, 200, 503):
            live.observe(
                {"from_cache": status == 200, "status_code": status, "processing_time_ms": 12.0}
            )
        await live.flush()  # fails quietly and keeps the counts
        stats = await live.snapshot()
    finally:
        await redis.aclose()
        await database.dispose()
    assert stats["degraded"] is True
    assert stats["instances"] == 1
    assert (stats["requests"], stats["cache_hits"], stats["errors"]) == (3, 2, 1)
    assert stats["edit_queue_depth"] == 0


def test_p95_is_the_upper_bound_of_its_bucket_within_ten_percent() -> None:
    values = [float(v) for v in range(1, 1001)]  # nearest-rank p95 = 950
    buckets = {}
    for value in values:
        bucket = latency_bucket(value)
        buckets[bucket] = buckets.get(bucket, 0) + 1
    p95 = p95_ms(Counter(buckets))
    assert 950 <= p95 <= 950 * 1.1
    assert bucket_upper_ms(latency_bucket(950.0)) >= 950
