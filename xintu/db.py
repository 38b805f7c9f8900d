"""Engine and session factories; the request-scoped session dependency."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from fastapi import Request
from sqlalchemy import Connection, Engine, Executable, Table, event
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

P = ParamSpec("P")
T = TypeVar("T")

# MySQL deadlock / lock wait timeout, PostgreSQL serialization failure / deadlock.
_RETRYABLE_CODES = ("1213", "1205", "40001", "40P01")
_WRITE_ATTEMPTS = 4


async def retry_on_conflict(attempt_once: Callable[[], Awaitable[T]]) -> T:
    """Run a transaction again (with backoff) when a concurrent one made it fail."""
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            return await attempt_once()
        except DBAPIError as exc:
            if attempt + 1 == _WRITE_ATTEMPTS or not is_retryable_conflict(exc):
                raise
            await asyncio.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


def is_retryable_conflict(exc: DBAPIError) -> bool:
    """A transaction lost to a concurrent one (deadlock, serialisation failure): running it
    again is the documented remedy on MySQL/MariaDB and PostgreSQL."""
    text = str(exc.orig)
    return any(code in text for code in _RETRYABLE_CODES) or "deadlock" in text.lower()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _create_private_file(path: Path) -> None:
    """The SQLite file holds users' data: readable by the service's user only (SQLite gives
    its -wal and -shm files the database file's mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine tuned per backend: WAL and a busy timeout on SQLite, pre-ping elsewhere."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            _create_private_file(Path(database))
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_recycle=1800, pool_size=20, max_overflow=20, **kwargs
    )


class Database:
    """The engine and its session factory; one per process, kept on ``app.state.db``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # The hot paths (cache lookups and writes, request-log batches) on SQLite use the
        # stdlib driver in a thread: one thread hop per operation instead of one per
        # cursor call through aiosqlite. Writes go through one thread: SQLite has one
        # writer at a time, and queueing beats its busy handler's sleeps.
        self._sqlite: Engine | None = None
        self._sqlite_writer: ThreadPoolExecutor | None = None
        self._sqlite_readers: ThreadPoolExecutor | None = None
        if is_sqlite(url):
            sync_url = make_url(url).set(drivername="sqlite+pysqlite")
            self._sqlite = sa_create_engine(
                sync_url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            event.listen(self._sqlite, "connect", _sqlite_pragmas)
            self._sqlite_writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
            # WAL lets readers run beside the writer: lookups never queue behind a flush.
            self._sqlite_readers = ThreadPoolExecutor(2, thread_name_prefix="sqlite-reader")

    async def run(
        self, operation: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``operation(connection, …)`` in one transaction, committed when it returns.

        The operation is plain synchronous SQLAlchemy Core code: it runs in a thread on
        SQLite and in the async driver's greenlet elsewhere.
        """
        return await self._run(self._sqlite_writer, operation, *args, **kwargs)

    async def read(
        self, operation: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like ``run``, for an operation that only reads (on SQLite, beside the writer)."""
        return await self._run(self._sqlite_readers, operation, *args, **kwargs)

    async def _run(
        self,
        executor: ThreadPoolExecutor | None,
        operation: Callable[Concatenate[Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        if self._sqlite is not None:
            sqlite = self._sqlite

            def in_thread() -> T:
                with sqlite.begin() as connection:
                    return operation(connection, *args, **kwargs)

            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, in_thread)
        async with self.engine.begin() as connection:
            return await connection.run_sync(operation, *args, **kwargs)

    async def dispose(self) -> None:
        for executor in (self._sqlite_writer, self._sqlite_readers):
            if executor is not None:
                executor.shutdown(wait=True)
        if self._sqlite is not None:
            self._sqlite.dispose()
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed on success, rolled back on error."""
    database: Database = request.app.state.db
    async with database.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


def upsert(
    dialect_name: str,
    table: Table,
    values: dict[str, Any],
    conflict_columns: list[str],
    update_columns: list[str],
) -> Executable:
    """INSERT … ON CONFLICT/DUPLICATE KEY UPDATE for SQLite, PostgreSQL and MySQL."""
    if dialect_name in ("mysql", "mariadb"):
        mysql_statement = mysql_insert(table).values(**values)
        return mysql_statement.on_duplicate_key_update(
            {column: mysql_statement.inserted[column] for column in update_columns}
        )
    insert_factory = postgresql_insert if dialect_name == "postgresql" else sqlite_insert
    statement = insert_factory(table).values(**values)
    return statement.on_conflict_do_update(
        index_elements=conflict_columns,
        set_={column: statement.excluded[column] for column in update_columns},
    )


def insert_ignoring_duplicates(
    dialect_name: str, table: Table, values: dict[str, Any], conflict_columns: list[str]
) -> Executable:
    """INSERT that does nothing when a row with the same unique key exists."""
    if dialect_name in ("mysql", "mariadb"):
        mysql_statement = mysql_insert(table).values(**values)
        # A no-op update: unlike INSERT IGNORE it does not swallow other errors.
        key = conflict_columns[0]
        return mysql_statement.on_duplicate_key_update({key: mysql_statement.inserted[key]})
    insert_factory = postgresql_insert if dialect_name == "postgresql" else sqlite_insert
    return (
        insert_factory(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns)
    )
