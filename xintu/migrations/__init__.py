"""Alembic migrations, run with `xintu migrate` or at `xintu serve` start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from xintu.db import create_engine

MIGRATIONS_DIR = Path(__file__).parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_to_head(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (safe to run from any thread)."""
    command.upgrade(alembic_config(url), "head")


async def upgrade_to_head_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync_connection: _upgrade_on(sync_connection, url))
    finally:
        await engine.dispose()


def _upgrade_on(connection: object, url: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
