"""Alembic migrations, run with `xintu migrate` or at start-up, one runner at a time.

Every runner takes a database lock first (MySQL/MariaDB/TiDB ``GET_LOCK``, PostgreSQL
``pg_advisory_xact_lock``, a file lock beside a SQLite file), so replicas that start together
on an empty database migrate it once: the others wait, then find it at head.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from loguru import logger
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from xintu.db import create_engine

MIGRATIONS_DIR = Path(__file__).parent
LOCK_NAME = "xintu_migrate"
# pg_advisory locks take a bigint: a fixed one for "xintu migrate".
_PG_LOCK_KEY = 0x78696E7475
LOCK_TIMEOUT_S = 600
SCHEMA_POLL_S = 1.0


class SchemaNotReady(RuntimeError):
    """The database cannot serve this release (unreachable, empty or behind)."""


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@lru_cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None
    return head


def schema_problem(current: tuple[str, ...]) -> str | None:
    """None when this release runs on a database at ``current``, else what is wrong.

    A revision this release does not know is newer (the next release migrated first):
    migrations only add, so that schema serves this release too."""
    if not current:
        return "the database has no schema: run `xintu migrate`"
    known = {revision.revision for revision in _script().walk_revisions()}
    if head_revision() in current or any(revision not in known for revision in current):
        return None
    return f"the schema is at {', '.join(current)}, this release needs {head_revision()}"


def _current_revisions(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


def upgrade_to_head(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (from code without an event loop)."""
    asyncio.run(upgrade_to_head_async(url))


async def upgrade_to_head_async(url: str) -> None:
    """Bring the database at ``url`` to the newest schema, under the migration lock."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection, _migration_lock(connection, url):
            await connection.run_sync(_upgrade_on, url)
            await connection.commit()
    finally:
        await engine.dispose()


def _upgrade_on(connection: Connection, url: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


@asynccontextmanager
async def _migration_lock(connection: AsyncConnection, url: str) -> AsyncIterator[None]:
    backend = connection.dialect.name
    if backend in ("mysql", "mariadb"):
        # A session lock: DDL commits implicitly on MySQL, the lock survives that.
        result = await connection.scalar(
            text("SELECT GET_LOCK(:name, :timeout)"),
            {"name": LOCK_NAME, "timeout": LOCK_TIMEOUT_S},
        )
        if result != 1:
            raise SchemaNotReady(f"another `xintu migrate` held the lock for {LOCK_TIMEOUT_S} s")
        try:
            yield
        finally:
            await connection.scalar(text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
    elif backend == "postgresql":
        # Held until the migration's transaction commits: DDL is transactional there.
        await connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'"))
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        yield
    else:
        database = make_url(url).database
        if not database or database == ":memory:":
            yield
            return
        lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # Private like the database beside it (0600).
        with os.fdopen(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "r+") as lock_file:
            await asyncio.to_thread(fcntl.flock, lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


async def current_schema_problem(url: str) -> str | None:
    """What keeps the database at ``url`` from serving this release (None: nothing)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return schema_problem(await connection.run_sync(_current_revisions))
    finally:
        await engine.dispose()


async def check_or_migrate(url: str, *, migrate: bool) -> str | None:
    """One attempt: None when the database at ``url`` serves this release (after migrating
    it under the lock when ``migrate``), else what is wrong."""
    try:
        problem = await current_schema_problem(url)
        if problem is not None and migrate:
            await upgrade_to_head_async(url)
            problem = None
    except (OSError, DBAPIError) as exc:
        problem = f"the database is unreachable ({type(exc).__name__}: {exc})"
    return problem


async def prepare_schema(url: str, *, migrate: bool, wait_s: float) -> None:
    """For commands (`xintu migrate`, `xintu worker`): migrate or wait for the migrate job,
    for at most ``wait_s``, also for a database that does not accept connections yet."""
    deadline = time.monotonic() + wait_s
    while (problem := await check_or_migrate(url, migrate=migrate)) is not None:
        if time.monotonic() >= deadline:
            raise SchemaNotReady(problem)
        logger.warning("waiting for the database: {}", problem)
        await asyncio.sleep(SCHEMA_POLL_S)
