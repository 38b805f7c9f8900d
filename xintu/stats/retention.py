"""request_log retention: rows older than ``XINTU_LOG_RETENTION_DAYS`` are deleted in small
batches (each its own short transaction, so writers are never blocked for long), daily by
the running service and on demand by ``xintu purge-logs``."""

from __future__ import annotations

import asyncio
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


async def purge_expired_logs(engine: AsyncEngine, retention_days: int, batch_size: int) -> int:
    """One round of the daily retention purge: rows older than ``retention_days``."""
    deleted = await purge_request_logs(engine, retention_cutoff(retention_days), batch_size)
    if deleted:
        logger.info("purged {} request_log rows older than {} days", deleted, retention_days)
    return deleted
