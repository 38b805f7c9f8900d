"""Background work inside a process, stopped with the app's exit stack.

Stopping lets a round that has started finish (up to a grace period) before cancelling
it: a task cancelled in the middle of a database transaction can leave its connection
checked out, and on SQLite that connection keeps the write lock until it is collected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection
from contextlib import AsyncExitStack
from typing import Any

from loguru import logger

GRACE_S = 10.0


async def finish_or_cancel(tasks: Collection[asyncio.Future[Any]], grace_s: float) -> None:
    """Wait up to ``grace_s`` for ``tasks`` to finish on their own, then cancel the rest."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def run_every(
    stack: AsyncExitStack,
    interval_s: float,
    job: Callable[[], Awaitable[object]],
    name: str,
) -> None:
    """Run ``job`` now and then every ``interval_s`` seconds until ``stack`` closes; a
    failure is logged and the next round tries again."""
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            try:
                await job()
            except Exception:  # noqa: BLE001 - keep the loop alive
                logger.exception("periodic {} failed", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), interval_s)

    task = asyncio.ensure_future(loop())

    async def stop() -> None:
        stopping.set()
        await finish_or_cancel([task], GRACE_S)

    stack.push_async_callback(stop)


def run_in_background(stack: AsyncExitStack, coroutine: Awaitable[None]) -> None:
    """Start ``coroutine`` as a task that is cancelled (and awaited) when ``stack`` closes;
    for loops that stop safely when cancelled (a queue receiver)."""
    task = asyncio.ensure_future(coroutine)

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)
