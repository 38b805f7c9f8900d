"""Reverse-geocoding speed and memory: load, single lookups, batches of 1000.

Run: PYTHONPATH=. python bench/geo.py
"""

from __future__ import annotations

import random
import resource
import time
from pathlib import Path

from xintu.geo import service


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _points(count: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    china = [(rng.uniform(20.0, 45.0), rng.uniform(98.0, 125.0)) for _ in range(count // 2)]
    world = [(rng.uniform(-55.0, 70.0), rng.uniform(-180.0, 180.0)) for _ in range(count // 2)]
    points = china + world
    rng.shuffle(points)
    return points


def main() -> None:
    before = _rss_mb()
    started = time.perf_counter()
    service.get_geocoder()
    load_s = time.perf_counter() - started
    after = _rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load: {load_s:.2f} s; RSS {before:.0f} -> {after:.0f} MB (+{after - before:.0f} MB)")
    print(f"peak RSS during load: {peak:.0f} MB")

    singles = _points(5000, 1)
    for latitude, longitude in singles[:200]:
        service.locate(latitude, longitude)
    started = time.perf_counter()
    for latitude, longitude in singles:
        service.locate(latitude, longitude)
    single_s = time.perf_counter() - started
    print(
        f"single lookups: {len(singles) / single_s:,.0f}/s "
        f"({single_s / len(singles) * 1e6:.0f} µs each, one thread)"
    )

    batches = [_points(1000, seed) for seed in range(2, 12)]
    timings = []
    for batch in batches:
        started = time.perf_counter()
        service.locate_batch(batch)
        timings.append(time.perf_counter() - started)
    timings.sort()
    median = timings[len(timings) // 2]
    print(
        f"batch of 1000: median {median * 1000:.1f} ms, worst {timings[-1] * 1000:.1f} ms "
        f"({1000 / median:,.0f} points/s)"
    )


if __name__ == "__main__":
    main()
