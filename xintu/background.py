"""Periodic background work inside a process, stopped with the app's exit stack."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from loguru import logger


async def every(interval_s: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run ``job`` now and then every ``interval_s`` seconds until cancelled; a failure is
    logged and the next round tries again."""
    while True:
        try:
            await job()
        except Exception:  # noqa: BLE001 - keep the loop alive
            logger.exception("periodic {} failed", name)
        await asyncio.sleep(interval_s)


def run_in_background(stack: AsyncExitStack, coroutine: Awaitable[None]) -> None:
    """Start ``coroutine`` as a task that is cancelled (and awaited) when ``stack`` closes."""
    task = asyncio.ensure_future(coroutine)

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)
