"""request_log retention: rows older than ``XINTU_LOG_RETENTION_DAYS`` are deleted in small
batches (each its own short transaction, so writers are never blocked for long), daily by
the running service and on demand by ``xintu purge-logs``."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import cast

from loguru import logger
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from xintu.models import RequestLog
from xintu.models.base import utcnow

_LOG = cast(Table, RequestLog.__table__)


async def purge_request_logs(
    engine: AsyncEngine, older_than: datetime, batch_size: int = 5000
) -> int:
    """Delete rows created before ``older_than``; returns how many were deleted.

    Ids are selected first through the ``created_at`` index and then deleted by primary
    key: portable (MySQL refuses LIMIT inside IN subqueries) and each batch locks only its
    own rows.
    """
    deleted = 0
    while True:
        async with engine.begin() as connection:
            ids = list(
                (
                    await connection.execute(
                        select(_LOG.c.id).where(_LOG.c.created_at < older_than).limit(batch_size)
                    )
                ).scalars()
            )
            if ids:
                await connection.execute(delete(_LOG).where(_LOG.c.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
        await asyncio.sleep(0)  # let requests in between batches


def retention_cutoff(retention_days: int, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=retention_days)


class LogPurger:
    """Purges once at start-up and then every ``interval_s`` (daily by default)."""

    def __init__(
        self, engine: AsyncEngine, retention_days: int, interval_s: float, batch_size: int
    ) -> None:
        self._engine = engine
        self._retention_days = retention_days
        self._interval_s = interval_s
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        deleted = await purge_request_logs(
            self._engine, retention_cutoff(self._retention_days), self._batch_size
        )
        if deleted:
            logger.info(
                "purged {} request_log rows older than {} days", deleted, self._retention_days
            )
        return deleted

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - try again at the next interval
                logger.error("request_log purge failed: {}", exc)
            await asyncio.sleep(self._interval_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
