"""request_log retention: old rows are purged in batches, by the service and the CLI."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from tests.conftest import AppFactory
from tests.stats.conftest import insert_rows, log_row
from tests.stats.test_admin_auth import _cli
from xintu.models import RequestLog
from xintu.stats.retention import purge_request_logs


async def _count(app: object) -> int:
    async with app.state.db.sessionmaker() as session:  # type: ignore[attr-defined]
        return int(await session.scalar(select(func.count()).select_from(RequestLog)) or 0)


async def test_purge_deletes_only_rows_older_than_the_cutoff_in_batches(
    make_client: AppFactory, database_url: str
) -> None:
    now = datetime.now(UTC)
    # The service's own purge (at start-up) keeps ten years here, so only ours deletes.
    async with make_client(database_url=database_url, log_retention_days=3650) as (app, _):
        await insert_rows(
            app,
            [log_row(now - timedelta(days=91, minutes=i)) for i in range(12)]
            + [log_row(now - timedelta(days=89)) for _ in range(3)],
        )
        deleted = await purge_request_logs(
            app.state.db.engine, now - timedelta(days=90), batch_size=5
        )
        assert deleted == 12
        assert await _count(app) == 3


async def test_running_service_purges_old_rows(make_client: AppFactory, sqlite_url: str) -> None:
    now = datetime.now(UTC)
    async with make_client(
        database_url=sqlite_url, log_retention_days=30, log_purge_interval_s=0.05
    ) as (app, _):
        await insert_rows(app, [log_row(now - timedelta(days=31)), log_row(now)])
        deadline = asyncio.get_running_loop().time() + 10
        while await _count(app) != 1:
            assert asyncio.get_running_loop().time() < deadline, "old row was not purged"
            await asyncio.sleep(0.05)


async def test_cli_purge_logs(make_client: AppFactory, sqlite_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    async with make_client(database_url=sqlite_url) as (app, _):
        await insert_rows(app, [log_row(now - timedelta(days=10)), log_row(now)])
        result = _cli(["purge-logs", "--days", "7", "--batch-size", "1"], sqlite_url, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "purged 1 " in result.stdout
        assert await _count(app) == 1
