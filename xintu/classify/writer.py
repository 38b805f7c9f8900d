"""Write-behind for the hot path: request_log rows and cache hit counts, in batches.

A cache hit must not wait for a database write. Rows and hit counts are buffered in
memory and written every ``flush_interval_s`` (default 1 s) or when 1,000 rows are
waiting, in one transaction. A crash loses at most the rows of the last interval; a
clean shutdown flushes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from loguru import logger
from sqlalchemy import Connection, Table, bindparam, insert, update

from xintu.db import Database
from xintu.models import ImageClassificationCache, RequestLog
from xintu.models.base import utcnow

_LOG = cast(Table, RequestLog.__table__)
_ENTRIES = cast(Table, ImageClassificationCache.__table__)
_FLUSH_AT_ROWS = 1000
_MAX_BUFFERED_ROWS = 100_000


def _write(
    connection: Connection,
    rows: list[dict[str, Any]],
    hits: Counter[str],
    last_hit: dict[str, datetime],
) -> None:
    if rows:
        connection.execute(insert(_LOG), rows)
    if hits:
        connection.execute(
            update(_ENTRIES)
            .where(_ENTRIES.c.image_hash == bindparam("hash_key"))
            .values(
                hit_count=_ENTRIES.c.hit_count + bindparam("hits"),
                last_hit_at=bindparam("hit_at"),
            ),
            [{"hash_key": h, "hits": n, "hit_at": last_hit[h]} for h, n in hits.items()],
        )


class WriteBehind:
    def __init__(self, database: Database, flush_interval_s: float) -> None:
        self._database = database
        self._interval = flush_interval_s
        self._rows: list[dict[str, Any]] = []
        self._hits: Counter[str] = Counter()
        self._last_hit: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        # Called with every logged row (metrics); must be cheap and never raise.
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    def log(self, row: dict[str, Any]) -> None:
        """Queue one request_log row (``created_at`` defaults to now)."""
        row.setdefault("created_at", utcnow())
        if len(self._rows) >= _MAX_BUFFERED_ROWS:
            # The database is down for long: drop the oldest rather than exhaust memory.
            del self._rows[:_FLUSH_AT_ROWS]
            logger.error("request_log buffer full; dropped {} rows", _FLUSH_AT_ROWS)
        self._rows.append(row)
        for observer in self.observers:
            observer(row)
        if len(self._rows) >= _FLUSH_AT_ROWS:
            self._wake.set()

    def note_hit(self, image_hash: str) -> None:
        self._hits[image_hash] += 1
        self._last_hit[image_hash] = utcnow()

    async def flush(self) -> None:
        """Write everything buffered so far."""
        async with self._lock:
            rows, self._rows = self._rows, []
            hits, self._hits = self._hits, Counter()
            last_hit, self._last_hit = self._last_hit, {}
            if not rows and not hits:
                return
            try:
                await self._database.run(_write, rows, hits, last_hit)
            except Exception as exc:  # noqa: BLE001 - keep the rows for the next try
                logger.error("write-behind flush failed ({}); will retry", exc)
                self._rows[:0] = rows
                self._hits.update(hits)
                for image_hash, when in last_hit.items():
                    self._last_hit.setdefault(image_hash, when)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            await self.flush()
