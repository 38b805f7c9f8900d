"""Whether the database is reachable, as the requests and ``/health`` last saw it.

A request that finds the database unreachable answers 503 ``database_unavailable`` (never
500), and for a short pause afterwards new classifications are refused before any provider
is called: an LLM answer that could not be stored or billed would be paid for nothing.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from loguru import logger
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from xintu.db import is_retryable_conflict
from xintu.errors import DatabaseUnavailable, error_body
from xintu.responses import FastJSONResponse

# After a connection failure, how long requests trust it instead of dialling again.
_PAUSE_S = 2.0


def is_database_busy(exc: BaseException) -> bool:
    """The database is up but overloaded: no pooled connection came free in time, or
    SQLite's writer lock was held past the busy timeout. Worth a 503, not an outage."""
    if isinstance(exc, PoolTimeoutError):
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def is_database_unavailable(exc: BaseException) -> bool:
    """A lost or refused connection (not a bad statement, a constraint or a busy lock)."""
    if is_database_busy(exc) or (isinstance(exc, DBAPIError) and is_retryable_conflict(exc)):
        return False
    if isinstance(exc, DBAPIError):
        return (
            exc.connection_invalidated
            or isinstance(exc, OperationalError | InterfaceError)
            or isinstance(exc.orig, OSError | TimeoutError)
        )
    # Some drivers let a refused connection or a timeout through unwrapped; the same
    # errors from anywhere else (a file, another service) are not the database's.
    return isinstance(exc, OSError | TimeoutError) and _raised_in_database_driver(exc)


_DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "asyncmy.", "aiomysql.", "aiosqlite.", "sqlite3")


def _raised_in_database_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        module = str(traceback.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


class DatabaseState:
    def __init__(self) -> None:
        self._failed_at: float | None = None

    @property
    def recently_failed(self) -> bool:
        return self._failed_at is not None and time.monotonic() - self._failed_at < _PAUSE_S

    def mark_failed(self, exc: BaseException) -> None:
        if self._failed_at is None:
            logger.warning("database unavailable: {!r}", exc)
        self._failed_at = time.monotonic()

    def mark_up(self) -> None:
        if self._failed_at is not None:
            logger.info("database reachable again")
        self._failed_at = None

    def require(self) -> None:
        """503 ``database_unavailable`` at once if the database failed moments ago."""
        if self.recently_failed:
            raise DatabaseUnavailable()


def install_database_unavailable_handler(app: FastAPI, state: DatabaseState) -> None:
    """Any request that loses the database answers 503 in the API's shape, not 500."""

    async def handler(_: Request, exc: Exception) -> FastJSONResponse:
        if is_database_unavailable(exc):
            state.mark_failed(exc)
        elif not is_database_busy(exc):
            raise exc
        error = DatabaseUnavailable()
        return FastJSONResponse(
            error_body(error.code, error.detail), status_code=503, headers={"Retry-After": "1"}
        )

    app.add_exception_handler(DBAPIError, handler)
    app.add_exception_handler(PoolTimeoutError, handler)
    app.add_exception_handler(OSError, handler)
    app.add_exception_handler(TimeoutError, handler)
