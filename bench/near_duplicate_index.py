"""The near-duplicate lookup at scale: an index, not a scan.

Fills a migrated SQLite database with N shared cache entries with random fingerprints,
then times ``repository.find_near_duplicate`` (four band-index seeks, at most 64 candidates
per band, Hamming and colour checks in Python) for queries that match an entry at Hamming
distance 0–6 and for queries that match nothing, and prints the query plan.

    .venv/bin/python bench/near_duplicate_index.py [--entries 1000000] [--queries 500]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xintu.classify import repository  # noqa: E402
from xintu.images.fingerprint import Fingerprint  # noqa: E402
from xintu.migrations import upgrade_to_head  # noqa: E402
from xintu.models import ImageClassificationCache  # noqa: E402
from xintu.models.base import utcnow  # noqa: E402

_CHUNK = 20_000


def fill(url: str, entries: int, rng: random.Random) -> list[Fingerprint]:
    engine = create_engine(url.replace("+aiosqlite", ""))
    now = utcnow()
    sample: list[Fingerprint] = []
    with engine.begin() as connection:
        connection.execute(text("PRAGMA journal_mode=WAL"))
        for start in range(0, entries, _CHUNK):
            rows = []
            for number in range(start, min(start + _CHUNK, entries)):
                value = Fingerprint(rng.getrandbits(64), rng.randbytes(48))
                if len(sample) < 2000 and rng.random() < 0.01:
                    sample.append(value)
                rows.append(
                    {
                        "image_hash": f"{number:064x}",
                        "category": "pets",
                        "confidence": 0.9,
                        "description": "",
                        "model": "bench",
                        "inference_method": "remote",
                        "shared": True,
                        "verified": True,
                        "hit_count": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    | repository.fingerprint_columns(value)
                )
            connection.execute(insert(ImageClassificationCache), rows)
    engine.dispose()
    return sample


def flipped(value: Fingerprint, bits: int, rng: random.Random) -> Fingerprint:
    phash = value.phash
    for bit in rng.sample(range(64), bits):
        phash ^= 1 << bit
    return Fingerprint(phash, value.thumb)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    rng = random.Random(7)
    url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='xintu-near-')}/near.db"
    upgrade_to_head(url)
    started = time.perf_counter()
    sample = fill(url, args.entries, rng)
    print(f"{args.entries:,} entries written in {time.perf_counter() - started:.1f} s")

    engine = create_engine(url.replace("+aiosqlite", ""))
    with engine.connect() as connection:
        plan = connection.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT image_hash FROM image_classification_cache "
                "WHERE phash_band0 = 1 AND shared = 1 LIMIT 64"
            )
        ).all()
        print("plan of one band lookup:", [row[-1] for row in plan])
        for distance in (0, 3, 6, None):
            timings = []
            found = 0
            for number in range(args.queries):
                base = sample[number % len(sample)]
                if distance is None:
                    query = Fingerprint(rng.getrandbits(64), rng.randbytes(48))
                else:
                    query = flipped(base, distance, rng)
                began = time.perf_counter()
                match = repository.find_near_duplicate(connection, query)
                timings.append((time.perf_counter() - began) * 1000)
                found += match is not None
            label = "no match" if distance is None else f"Hamming {distance}"
            timings.sort()
            p95 = timings[int(len(timings) * 0.95)]
            print(
                f"{label:>10}: found {found}/{args.queries}, median "
                f"{statistics.median(timings):.2f} ms, p95 {p95:.2f} ms"
            )
    engine.dispose()


if __name__ == "__main__":
    main()
