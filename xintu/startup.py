"""The schema at start-up, without blocking the server on it.

Start-up makes one attempt: migrate an empty or older database under the migration lock
(``XINTU_MIGRATE_ON_START``, the default) or find it migrated by the migrate job. When that
fails (database unreachable, schema missing or behind), the server starts anyway: /health
answers 503 ``down`` saying why, the API answers 503 ``schema_not_ready`` instead of 500
"no such table", and a background task tries again every second until it succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress

from loguru import logger
from starlette.types import ASGIApp, Receive, Scope, Send

from xintu.migrations import SCHEMA_POLL_S, check_or_migrate
from xintu.responses import FastJSONResponse

# Paths that keep answering while the schema is not ready: probes and operations.
_ALWAYS_OPEN = ("/api/v1/health", "/api/v1/categories")


class SchemaGate:
    """Whether the database serves this release; ``problem`` says why not."""

    def __init__(self, database_url: str, migrate: bool) -> None:
        self.database_url = database_url
        self.migrate = migrate
        self.problem: str | None = "the schema has not been checked yet"

    async def start(self, stack: AsyncExitStack, on_ready: Callable[[], Awaitable[None]]) -> None:
        if await self._attempt():
            await on_ready()
            return
        logger.warning("serving before the schema is ready: {}", self.problem)
        task = asyncio.create_task(self._retry(on_ready), name="schema gate")

        async def stop() -> None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop)

    async def _attempt(self) -> bool:
        self.problem = await check_or_migrate(self.database_url, migrate=self.migrate)
        return self.problem is None

    async def _retry(self, on_ready: Callable[[], Awaitable[None]]) -> None:
        reported = self.problem
        while not await self._attempt():
            if self.problem != reported:
                logger.warning("schema not ready: {}", self.problem)
                reported = self.problem
            await asyncio.sleep(SCHEMA_POLL_S)
        logger.info("the schema is ready")
        await on_ready()


class SchemaGateMiddleware:
    """503 ``schema_not_ready`` for API calls while the gate is closed."""

    def __init__(self, app: ASGIApp, gate: SchemaGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = self.gate.problem
        if (
            problem is not None
            and scope["type"] == "http"
            and scope["path"].startswith("/api/")
            and scope["path"] not in _ALWAYS_OPEN
        ):
            body = {"success": False, "code": "schema_not_ready", "detail": problem}
            await FastJSONResponse(body, status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)
