"""Write-behind for the hot path: request_log rows and cache hit counts, in batches.

A cache hit must not wait for a database write. Rows and hit counts are buffered in
memory and written every ``flush_interval_s`` (default 1 s) or when 1,000 rows are
waiting. A crash loses at most the rows of the last interval; a clean shutdown flushes
everything.

Nothing is lost while the database answers:
- A batch that fails while the database is reachable holds a row no database accepts; the
  batch is split in halves until that row is alone, the good rows are written and the
  bad one is set aside (logged without its data, counted in ``/metrics``).
- When the writer falls behind (rows arrive faster than the database takes them), requests
  wait for room in the backlog before they are served (backpressure), and answer 503
  ``overloaded`` if none comes within ``wait_timeout_s``: a classification is either
  served and logged, or not served.
Only while the database is unreachable does the buffer, past ``_MAX_BUFFERED_ROWS``, drop
its oldest rows (memory is finite); those are counted in ``/metrics`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from loguru import logger
from sqlalchemy import Connection, Table, bindparam, insert, text, update

from xintu.db import Database
from xintu.errors import AppError
from xintu.models import ImageClassificationCache, RequestLog
from xintu.models.base import utcnow

_LOG = cast(Table, RequestLog.__table__)
_ENTRIES = cast(Table, ImageClassificationCache.__table__)
_FLUSH_AT_ROWS = 1000
# One transaction per this many rows: waiting requests get room as each one commits.
_ROWS_PER_WRITE = 5000
# Kept while the database is unreachable; beyond it the oldest rows are dropped.
_MAX_BUFFERED_ROWS = 100_000


class Overloaded(AppError):
    status_code = 503
    code = "overloaded"
    detail = "The service is catching up with its request log; retry in a moment"


def _insert_rows(connection: Connection, rows: list[dict[str, Any]]) -> None:
    connection.execute(insert(_LOG), rows)


def _update_hits(connection: Connection, hits: Counter[str], last_hit: dict[str, datetime]) -> None:
    connection.execute(
        update(_ENTRIES)
        .where(_ENTRIES.c.image_hash == bindparam("hash_key"))
        .values(
            hit_count=_ENTRIES.c.hit_count + bindparam("hits"),
            last_hit_at=bindparam("hit_at"),
        ),
        [{"hash_key": h, "hits": n, "hit_at": last_hit[h]} for h, n in hits.items()],
    )


def _write(
    connection: Connection,
    rows: list[dict[str, Any]],
    hits: Counter[str],
    last_hit: dict[str, datetime],
) -> None:
    if rows:
        _insert_rows(connection, rows)
    if hits:
        _update_hits(connection, hits, last_hit)


def _ping(connection: Connection) -> None:
    connection.execute(text("SELECT 1"))


class WriteBehind:
    def __init__(
        self,
        database: Database,
        flush_interval_s: float,
        max_backlog: int = 20_000,
        wait_timeout_s: float = 10.0,
    ) -> None:
        self._database = database
        self._interval = flush_interval_s
        self._max_backlog = max_backlog
        self._wait_timeout = wait_timeout_s
        self._rows: list[dict[str, Any]] = []
        self._hits: Counter[str] = Counter()
        self._last_hit: dict[str, datetime] = {}
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._room = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.database_up = True
        # Read by /metrics.
        self.rows_written = 0
        self.rows_set_aside = 0
        self.rows_dropped = 0
        self.backpressure_waits = 0
        # Called with every logged row (metrics); must be cheap and never raise.
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    @property
    def backlog(self) -> int:
        """Rows logged and not yet committed (buffered plus being written)."""
        return len(self._rows) + self._in_flight

    def _has_room(self, rows: int) -> bool:
        backlog = self.backlog
        # A request larger than the whole backlog still goes through once it is empty.
        return backlog == 0 or backlog + rows <= self._max_backlog or not self.database_up

    async def reserve(self, rows: int) -> None:
        """Wait until the backlog has room for ``rows`` more rows; 503 ``overloaded`` when
        the writer makes none within the wait timeout. Call before serving."""
        if self._has_room(rows):
            return
        self.backpressure_waits += 1
        deadline = asyncio.get_running_loop().time() + self._wait_timeout
        async with self._room:
            while not self._has_room(rows):
                self._wake.set()  # the writer flushes now instead of at its next interval
                remaining = deadline - asyncio.get_running_loop().time()
                try:
                    await asyncio.wait_for(self._room.wait(), remaining)
                except TimeoutError:
                    raise Overloaded(headers={"Retry-After": "1"}) from None

    def log(self, row: dict[str, Any]) -> None:
        """Queue one request_log row (``created_at`` defaults to now)."""
        row.setdefault("created_at", utcnow())
        if not self.database_up and len(self._rows) >= _MAX_BUFFERED_ROWS:
            del self._rows[:_FLUSH_AT_ROWS]
            self.rows_dropped += _FLUSH_AT_ROWS
            logger.error(
                "database unreachable and request_log buffer full; dropped {} rows",
                _FLUSH_AT_ROWS,
            )
        self._rows.append(row)
        for observer in self.observers:
            observer(row)
        if len(self._rows) >= _FLUSH_AT_ROWS:
            self._wake.set()

    def note_hit(self, image_hash: str) -> None:
        self._hits[image_hash] += 1
        self._last_hit[image_hash] = utcnow()

    async def flush(self) -> None:
        """Write everything buffered so far (stops early while the database is unreachable)."""
        async with self._lock:
            while self._rows or self._hits:
                if not await self._write_next():
                    return

    async def _write_next(self) -> bool:
        """Write the oldest rows and all hit counts; False when the database is unreachable
        (everything is kept for the next try)."""
        rows, self._rows = self._rows[:_ROWS_PER_WRITE], self._rows[_ROWS_PER_WRITE:]
        hits, self._hits = self._hits, Counter()
        last_hit, self._last_hit = self._last_hit, {}
        self._in_flight = len(rows)
        try:
            try:
                await self._database.run(_write, rows, hits, last_hit)
            except Exception as exc:  # noqa: BLE001 - decided below: outage or a bad row
                if not await self._reachable(exc):
                    self._keep(rows, hits, last_hit)
                    return False
                # The database answers, so some row is bad: hits alone, then the rows apart.
                try:
                    if hits:
                        await self._database.run(_update_hits, hits, last_hit)
                except Exception as hits_exc:  # noqa: BLE001 - the database went away meanwhile
                    await self._reachable(hits_exc)
                    self._keep(rows, hits, last_hit)
                    return False
                unwritten = await self._insert_isolating_bad_rows(rows)
                if unwritten:
                    self._keep(unwritten, Counter(), {})
                    return False
            else:
                self.rows_written += len(rows)
            self.database_up = True
            return True
        finally:
            self._in_flight = 0
            async with self._room:
                self._room.notify_all()

    async def _insert_isolating_bad_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert ``rows`` in halves until each bad row is alone and set aside; returns the
        rows left unwritten because the database became unreachable meanwhile."""
        pending = [rows]
        while pending:
            part = pending.pop()
            try:
                await self._database.run(_insert_rows, part)
            except Exception as exc:  # noqa: BLE001 - an outage or a bad row, as above
                if not await self._reachable(exc):
                    return [row for chunk in (part, *reversed(pending)) for row in chunk]
                if len(part) == 1:
                    self._set_aside(part[0], exc)
                else:
                    middle = len(part) // 2
                    pending += [part[middle:], part[:middle]]
            else:
                self.rows_written += len(part)
        return []

    def _set_aside(self, row: dict[str, Any], exc: Exception) -> None:
        # Never the row's values (labels, hashes) nor the driver's message (it quotes them).
        self.rows_set_aside += 1
        logger.error(
            "request_log row set aside: the database refused it ({}); endpoint {}, request {}",
            type(exc).__name__,
            ascii(row.get("endpoint"))[:40],
            ascii(row.get("request_id"))[:40],
        )

    async def _reachable(self, exc: Exception) -> bool:
        """Whether the database answers; a failure while it does not is an outage."""
        try:
            await self._database.read(_ping)
        except Exception:  # noqa: BLE001 - unreachable, whatever the driver raises
            if self.database_up:
                logger.error("request_log write failed, database unreachable ({}); will retry", exc)
            self.database_up = False
            return False
        return True

    def _keep(
        self, rows: list[dict[str, Any]], hits: Counter[str], last_hit: dict[str, datetime]
    ) -> None:
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
        if self._rows:
            lost = len(self._rows)
            logger.error("database unreachable at shutdown; {} request_log rows lost", lost)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            await self.flush()
